import json
import math

import numpy as np
import pytest
import torch
from transformers import PreTrainedTokenizerFast

from modeling_gato import GatoImageProcessor, GatoProcessor
from modeling_gato.processing_gato import GatoDiscretizer

MU, M, BINS, OFFSET = 100.0, 256.0, 1024, 32000


def reference_mu_law(x):
    return math.copysign(math.log(abs(x) * MU + 1.0) / math.log(M * MU + 1.0), x) if x != 0 else 0.0


def reference_token(x, mu_law=True):
    """The paper's formula, one scalar at a time, written independently of the implementation."""
    y = reference_mu_law(x) if mu_law else x
    y = min(max(y, -1.0), 1.0)
    return OFFSET + min(int(math.floor((y + 1) / 2 * BINS)), BINS - 1)


# ---------------------------------------------------------------------------- discretizer
def test_mu_law_binning_matches_the_formula_on_random_values(processor):
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 1, 3000), rng.normal(0, 100, 3000), rng.uniform(-1e4, 1e4, 3000)])
    ids = processor.discretizer.encode(values)
    assert ids.dtype == np.int64 and ids.shape == values.shape
    assert ids.tolist() == [reference_token(float(v)) for v in values]
    assert ids.min() >= 32000 and ids.max() < 33024


@pytest.mark.parametrize(
    "value", [0.0, 1.0, -1.0, 1e-9, -1e-9, 255.9, 256.0, -256.0, 1e6, -1e6, 1e30, -1e30, 0.5, -0.5]
)
def test_mu_law_binning_on_edge_values(processor, value):
    assert int(processor.discretizer.encode([value])[0]) == reference_token(value)


def test_extremes_land_in_the_first_and_last_bins(processor):
    ids = processor.discretizer.encode(np.array([-1e9, -256.0, 256.0, 1e9]))
    assert ids.tolist() == [32000, 32000, 33023, 33023]  # y = +1 is bin 1023, not the next id range
    assert processor.discretizer.encode(np.array([1.0, -1.0]), mu_law=False).tolist() == [33023, 32000]
    assert int(processor.discretizer.encode([0.0])[0]) == 32512  # F(0) = 0 is the lower edge of bin 512


def test_values_on_bin_edges_go_to_the_upper_bin(processor):
    discretizer = processor.discretizer
    for k in (1, 100, 511, 512, 513, 1000, 1023):
        edge = k / BINS * 2 - 1  # lower edge of bin k in [-1, 1]
        if (edge + 1) / 2 * BINS != k:
            continue  # not exactly representable
        assert int(discretizer.encode([edge], mu_law=False)[0]) == OFFSET + k
        x = float(discretizer.inverse_mu_law(edge))
        assert int(discretizer.encode([x])[0]) == reference_token(x)


def test_decode_takes_bin_centres(processor):
    ids = np.arange(32000, 33024)
    y = processor.discretizer.decode(ids, mu_law=False)
    np.testing.assert_allclose(y, (np.arange(1024) + 0.5) / 1024 * 2 - 1, atol=1e-12)
    x = processor.discretizer.decode(ids)
    expected = [math.copysign((math.pow(M * MU + 1, abs(v)) - 1) / MU, v) for v in y]
    np.testing.assert_allclose(x, expected, rtol=1e-9)
    assert np.all(np.diff(x) > 0)


def test_round_trip_within_half_a_bin_in_mu_law_space(processor):
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(0, 10, 20000), [0.0, 1.0, -1.0, 300.0, -300.0, 1e5]])
    decoded = processor.discretizer.decode(processor.discretizer.encode(values))
    in_mu = np.clip([reference_mu_law(float(v)) for v in values], -1, 1)
    out_mu = np.array([reference_mu_law(float(v)) for v in decoded])
    assert np.max(np.abs(out_mu - in_mu)) <= 1.0 / BINS + 1e-12
    # without mu-law: actions in [-1, 1] come back within half a bin (1/1024)
    actions = rng.uniform(-1, 1, 5000)
    back = processor.discretizer.decode(processor.discretizer.encode(actions, mu_law=False), mu_law=False)
    assert np.max(np.abs(back - actions)) <= 1.0 / BINS + 1e-12


def test_torch_in_torch_out():
    discretizer = GatoDiscretizer()
    x = torch.tensor([[0.5, -3.0], [100.0, 0.0]])
    ids = discretizer.encode(x)
    assert isinstance(ids, torch.Tensor) and ids.dtype == torch.int64 and ids.shape == (2, 2)
    assert ids.flatten().tolist() == [reference_token(float(v)) for v in x.flatten()]
    back = discretizer.decode(ids)
    assert isinstance(back, torch.Tensor) and back.dtype == torch.float32


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_are_an_error(processor, bad):
    with pytest.raises(ValueError, match="finite"):
        processor.discretizer.encode([0.0, bad])


def test_decode_rejects_ids_outside_the_continuous_range(processor):
    with pytest.raises(ValueError, match=r"\[32000, 33024\)"):
        processor.discretizer.decode([31999])
    with pytest.raises(ValueError, match=r"\[32000, 33024\)"):
        processor.discretizer.decode([33024])


# ---------------------------------------------------------------------------- images
def test_patch_values_and_raster_order():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(32, 48, 3), dtype=np.uint8)  # 2 rows x 3 columns of patches
    patches, intervals = GatoImageProcessor().patchify(image)
    assert patches.shape == (6, 3, 16, 16) and patches.dtype == np.float32
    for index in range(6):
        r, c = divmod(index, 3)
        expected = (image[16 * r : 16 * r + 16, 16 * c : 16 * c + 16].astype(np.float64) / 255 * 2 - 1) / 4
        np.testing.assert_allclose(patches[index], expected.transpose(2, 0, 1), atol=1e-6)
    assert patches.min() >= -0.25 and patches.max() <= 0.25


def test_patch_intervals_of_a_non_square_image():
    _, intervals = GatoImageProcessor().patchify(np.zeros((32, 80, 3), np.uint8))  # 2 x 5 patches
    expected = [[r / 2, (r + 1) / 2, c / 5, (c + 1) / 5] for r in range(2) for c in range(5)]
    np.testing.assert_allclose(intervals, expected, atol=1e-7)


def test_channels_first_float_and_grayscale_agree_with_uint8():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(16, 32, 3), dtype=np.uint8)
    patcher = GatoImageProcessor()
    reference, _ = patcher.patchify(image)
    np.testing.assert_allclose(patcher.patchify(image.transpose(2, 0, 1))[0], reference, atol=1e-6)
    np.testing.assert_allclose(patcher.patchify(image.astype(np.float32) / 255)[0], reference, atol=1e-6)
    np.testing.assert_allclose(patcher.patchify(torch.from_numpy(image))[0], reference, atol=1e-6)
    gray = image[..., 0]
    patches, _ = patcher.patchify(gray)
    np.testing.assert_allclose(patches[:, 0], patches[:, 2])
    np.testing.assert_allclose(patches[:, 0], reference[:, 0], atol=1e-6)


def test_pil_images():
    from PIL import Image

    image = np.random.default_rng(3).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    patches, _ = GatoImageProcessor().patchify(Image.fromarray(image))
    np.testing.assert_allclose(patches[0], (image / 255 * 2 - 1).transpose(2, 0, 1) / 4, atol=1e-6)


def test_sizes_not_divisible_by_16_are_padded_with_black():
    image = np.full((56, 56, 3), 255, np.uint8)
    patches, intervals = GatoImageProcessor().patchify(image)
    assert patches.shape[0] == 16  # padded to 64 x 64
    np.testing.assert_allclose(intervals[-1], [0.75, 1.0, 0.75, 1.0])
    last = patches[-1]  # bottom-right patch: 8 x 8 white pixels then black padding
    np.testing.assert_allclose(last[:, :8, :8], 0.25)
    np.testing.assert_allclose(last[:, 8:, :], -0.25)
    with pytest.raises(ValueError, match="multiples of patch_size"):
        GatoImageProcessor(do_pad=False).patchify(image)
    resized, _ = GatoImageProcessor(size={"height": 64, "width": 32}).patchify(image)
    assert resized.shape[0] == 8
    np.testing.assert_allclose(resized, 0.25, atol=1e-6)


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((2, 16, 16, 3), np.uint8), "rank"),
        (np.zeros((16,), np.uint8), "rank"),
        (np.zeros((16, 16, 5), np.uint8), "channels"),
        (np.zeros((16, 16, 2), np.uint8), "channels"),
        (np.full((16, 16, 3), 2.0, np.float32), r"\[0, 1\]"),
        (np.full((16, 16, 3), np.nan, np.float32), "NaN"),
        (np.full((16, 16, 3), 300, np.int64), r"\[0, 255\]"),
    ],
)
def test_bad_images_are_errors(image, message):
    with pytest.raises(ValueError, match=message):
        GatoImageProcessor().patchify(image)


def test_image_processor_call_and_round_trip(tmp_path):
    patcher = GatoImageProcessor(size={"height": 32, "width": 32})
    out = patcher([np.zeros((20, 20, 3), np.uint8), np.zeros((40, 10, 3), np.uint8)], return_tensors="pt")
    assert out["image_patches"].shape == (2, 4, 3, 16, 16) and out["patch_intervals"].shape == (2, 4, 4)
    patcher.save_pretrained(tmp_path)
    loaded = GatoImageProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == patcher.to_dict()


# ---------------------------------------------------------------------------- tokenizer
def test_default_tokenizer_is_offline_and_below_the_continuous_range(processor):
    assert isinstance(processor.tokenizer, PreTrainedTokenizerFast)
    assert len(processor.tokenizer) == 32000
    ids = processor.tokenizer("The agent picks up the red ball.", add_special_tokens=False)["input_ids"]
    assert ids and max(ids) < 32000
    assert processor.decode(ids) == "The agent picks up the red ball."
    assert processor.tokenizer.pad_token_id == 0 and processor.tokenizer.eos_token_id == 2


# ---------------------------------------------------------------------------- episodes
def expected_layout(processor, episode):
    """Ids, local positions and loss mask of an episode, built by hand from the spec (lexicographic keys)."""
    ids, local, loss, patch = [], [], [], []
    for t in range(len(episode["continuous_actions"])):
        obs = []
        obs += [reference_token(v) for v in np.ravel(episode["continuous_observations"][t])]
        obs += [int(v) for v in np.ravel(episode["discrete_observations"][t])]
        image = episode["image_observations"][t]
        num_patches = (-(-image.shape[0] // 16)) * (-(-image.shape[1] // 16))
        obs_patch = [False] * len(obs) + [True] * num_patches
        obs += [0] * num_patches
        text = processor.tokenizer(episode["text_observations"][t], add_special_tokens=False)["input_ids"]
        obs += text
        obs_patch += [False] * len(text)
        actions = [reference_token(v, mu_law=False) for v in episode["continuous_actions"][t]]
        ids += obs + [33024] + actions
        local += list(range(len(obs))) + [-1] * (1 + len(actions))
        loss += [0] * (len(obs) + 1) + [1] * len(actions)
        patch += obs_patch + [False] * (1 + len(actions))
    return ids, local, loss, patch


def test_two_timestep_episode_layout(processor, episode):
    batch = processor(episodes=episode)
    ids, local, loss, patch = expected_layout(processor, episode)
    assert batch["input_ids"][0].tolist() == ids
    assert batch["local_positions"][0].tolist() == local
    assert batch["loss_mask"][0].int().tolist() == loss
    assert batch["patch_mask"][0].tolist() == patch
    assert batch["action_mask"][0].int().tolist() == loss  # in an episode, the targets are exactly the actions
    assert batch["attention_mask"][0].tolist() == [1] * len(ids)
    # separators: one per timestep, right before the actions, never a target, no local position
    separators = (batch["input_ids"][0] == 33024).nonzero().flatten().tolist()
    assert len(separators) == 2
    for s in separators:
        assert batch["loss_mask"][0, s] == 0 and batch["local_positions"][0, s] == -1
        assert batch["loss_mask"][0, s + 1] == 1
    # every timestep's local positions restart at 0
    assert (batch["local_positions"][0] == 0).sum() == 2
    # the patch pixels sit at the patch slots, in raster order, timestep by timestep
    slots = batch["patch_mask"][0].nonzero().flatten()
    first, _ = GatoImageProcessor().patchify(episode["image_observations"][0])
    np.testing.assert_allclose(batch["image_patches"][0, slots[: len(first)]].numpy(), first, atol=1e-6)
    assert batch["image_patches"][0, ~batch["patch_mask"][0]].abs().sum() == 0
    rows = batch["patch_intervals"][0, slots[:6]]
    np.testing.assert_allclose(rows[:, 0].numpy(), [0, 0, 0, 0.5, 0.5, 0.5])
    np.testing.assert_allclose(rows[:, 2].numpy(), [0, 1 / 3, 2 / 3, 0, 1 / 3, 2 / 3], atol=1e-6)


def test_discrete_actions_and_dict_observations(processor):
    episode = {
        "continuous_observations": [{"b": [1.0, 2.0], "a": [[3.0], [4.0]]}, {"b": [0.0, 0.0], "a": [[0.0], [1.0]]}],
        "discrete_actions": [2, 5],
    }
    out = processor.tokenize_episode(episode)
    first = [reference_token(v) for v in (3.0, 4.0, 1.0, 2.0)] + [33024, 2]  # keys sorted: a before b
    assert out["input_ids"][:6].tolist() == first
    assert out["timestep_starts"].tolist() == [0, 6]
    assert out["loss_mask"].tolist() == [False] * 5 + [True] + [False] * 5 + [True]


def test_rewards_are_left_out_unless_enabled(processor):
    episode = {"continuous_observations": [[0.0], [1.0]], "discrete_actions": [1, 2], "rewards": [3.0, 4.0]}
    assert len(processor.tokenize_episode(episode)["input_ids"]) == 6
    with_rewards = GatoProcessor(tokenizer=processor.tokenizer, include_rewards=True).tokenize_episode(episode)
    # step 0: obs | a ; step 1: obs, reward(step 0) | a
    assert with_rewards["input_ids"].tolist() == [
        reference_token(0.0), 33024, 1, reference_token(1.0), reference_token(3.0), 33024, 2
    ]


def test_padding_batches_and_sides(processor, episode):
    short = {k: v[:1] for k, v in episode.items() if k != "task"}
    batch = processor(episodes=[episode, short])
    n_long, n_short = (len(processor.tokenize_episode(e)["input_ids"]) for e in (episode, short))
    assert batch["input_ids"].shape == (2, n_long)
    assert batch["attention_mask"][1].sum() == n_short and batch["attention_mask"][1, n_short:].sum() == 0
    assert batch["loss_mask"][1, n_short:].sum() == 0 and (batch["local_positions"][1, n_short:] == -1).all()
    left = processor(episodes=[episode, short], padding_side="left")
    assert torch.equal(left["input_ids"][1, -n_short:], batch["input_ids"][1, :n_short])
    assert torch.equal(left["image_patches"][1, -n_short:], batch["image_patches"][1, :n_short])


def test_text_and_image_text(processor):
    text = processor(text=["hello world", "a longer piece of text here"])
    assert text["loss_mask"].sum() == text["attention_mask"].sum()
    assert "image_patches" not in text and (text["local_positions"] == -1).all()
    image = np.zeros((32, 32, 3), np.uint8)
    caption = processor(images=[image], text=["a black square"])
    n_text = len(processor.tokenize_text("a black square"))
    assert caption["patch_mask"][0].tolist() == [True] * 4 + [False] * n_text
    assert caption["local_positions"][0].tolist() == [0, 1, 2, 3] + [-1] * n_text
    assert caption["loss_mask"][0].tolist() == [False] * 4 + [True] * n_text


@pytest.mark.parametrize(
    "episode, message",
    [
        ({"continuous_observations": [[0.0, float("nan")]], "discrete_actions": [0]}, "step 0 value 1 is nan"),
        ({"continuous_observations": [[float("inf")]], "discrete_actions": [0]}, "finite"),
        ({"discrete_observations": [[0, 1024]], "discrete_actions": [0]}, r"\[0, 1024\)"),
        ({"discrete_observations": [[-1]], "discrete_actions": [0]}, r"\[0, 1024\)"),
        ({"discrete_observations": [[0.5]], "discrete_actions": [0]}, "integers"),
        ({"continuous_observations": [], "discrete_actions": []}, "empty"),
        ({"task": "x"}, "no episode columns"),
        ({"continuous_observations": [[0.0], [1.0]], "discrete_actions": [0]}, "has 1 timesteps, expected 2"),
        ({"image_observations": [np.zeros((4, 16, 16, 3), np.uint8)], "discrete_actions": [0]}, "rank"),
        ({"image_observations": [np.zeros((16, 16, 7), np.uint8)], "discrete_actions": [0]}, "channels"),
    ],
)
def test_bad_episodes_are_clear_errors(processor, episode, message):
    with pytest.raises(ValueError, match=message):
        processor(episodes=episode)


def test_too_long_and_mismatched_batches(processor):
    long_episode = {"continuous_observations": np.zeros((300, 3)).tolist(), "discrete_actions": [0] * 300}
    with pytest.raises(ValueError, match="longer than the context"):
        processor(episodes=long_episode)
    truncated = processor(episodes=long_episode, truncation=True)
    assert truncated["input_ids"].shape == (1, 1024)
    with pytest.raises(ValueError, match="same batch size"):
        processor(images=[np.zeros((16, 16, 3), np.uint8)] * 2, text=["one"])
    with pytest.raises(ValueError, match="local_position_size"):
        processor(episodes={"continuous_observations": [np.zeros(600).tolist()], "discrete_actions": [0]})


# ---------------------------------------------------------------------------- actions
def test_action_encode_decode_for_gymnasium_spaces(processor):
    gymnasium = pytest.importorskip("gymnasium")
    box = gymnasium.spaces.Box(low=np.array([-2.0, 0.0], np.float32), high=np.array([2.0, 10.0], np.float32))
    action = np.array([1.0, 2.5], np.float32)
    ids = processor.encode_action(action, box)
    # [-2, 2] -> [-1, 1]: 1.0 -> 0.5 ; [0, 10] -> [-1, 1]: 2.5 -> -0.5 ; no mu-law
    assert ids.tolist() == [reference_token(0.5, mu_law=False), reference_token(-0.5, mu_law=False)]
    decoded = processor.decode_action(ids, box)
    assert decoded.shape == (2,) and decoded.dtype == np.float32 and box.contains(decoded)
    assert np.all(np.abs(decoded - action) <= (box.high - box.low) / 2048 + 1e-6)  # half a bin, in action units
    discrete = gymnasium.spaces.Discrete(7, start=1)
    assert processor.decode_action(processor.encode_action(4, discrete), discrete) == 4
    multi = gymnasium.spaces.MultiDiscrete([3, 5])
    assert processor.decode_action(processor.encode_action(np.array([2, 4]), multi), multi).tolist() == [2, 4]
    assert processor.action_token_ranges(box) == [(32000, 33024)] * 2
    assert processor.action_token_ranges(multi) == [(0, 3), (0, 5)]
    with pytest.raises(ValueError, match="outside"):
        processor.decode_action([9], gymnasium.spaces.Discrete(3))
    with pytest.raises(ValueError, match="expected 2 continuous ids"):
        processor.decode_action([32000], box)


# ---------------------------------------------------------------------------- save / load
def test_processor_round_trip_is_exact(tmp_path, processor, episode):
    custom = GatoProcessor(
        image_processor=GatoImageProcessor(size={"height": 32, "width": 32}),
        tokenizer=processor.tokenizer,
        mu=50.0,
        include_rewards=True,
    )
    custom.save_pretrained(tmp_path)
    loaded = GatoProcessor.from_pretrained(tmp_path)
    settings = [json.loads(p.to_json_string()) for p in (loaded, custom)]
    for setting in settings:
        setting.pop("auto_map", None)
        setting["image_processor"].pop("auto_map", None)
    assert settings[0] == settings[1]
    assert loaded.discretizer.mu == 50.0 and loaded.include_rewards is True
    assert loaded.tokenizer.get_vocab() == custom.tokenizer.get_vocab()
    a, b = custom(episodes=episode), loaded(episodes=episode)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
