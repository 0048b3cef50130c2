"""The processor's units, each alone on hand-checked values: the action codec, the episode tokenizer, the batch
collation; and how `GatoProcessor` composes them (delegation, nothing extra saved)."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from modeling_gato import GatoImageProcessor, GatoProcessor
from modeling_gato.processing_gato import (
    GatoActionCodec,
    GatoBatchCollation,
    GatoDiscretizer,
    GatoEpisodeTokenizer,
    default_tokenizer,
)

SEP = 33024


# Duck-typed spaces: the codec reads only `n` / `nvec` / `low`, `high`, `shape`, `dtype` and `start`.
def discrete(n, start=0):
    return SimpleNamespace(n=n, start=start)


def multi_discrete(nvec):
    return SimpleNamespace(nvec=np.asarray(nvec))


def box(low, high):
    low = np.asarray(low, np.float32)
    return SimpleNamespace(low=low, high=np.asarray(high, np.float32), shape=low.shape, dtype=np.float32)


@pytest.fixture(scope="module")
def tokenizer():
    return default_tokenizer()


# ---------------------------------------------------------------------------- action codec
def test_codec_round_trips_a_discrete_action():
    codec = GatoActionCodec(GatoDiscretizer())
    space = discrete(7, start=1)
    assert codec.encode(4, space).tolist() == [3]  # the value minus start
    assert codec.decode([3], space) == 4 and isinstance(codec.decode([3], space), int)
    assert codec.token_ranges(space) == [(0, 7)]
    with pytest.raises(ValueError, match=r"outside the space: expected integers in \[1, 8\)"):
        codec.encode(8, space)
    with pytest.raises(ValueError, match=r"discrete action 7 is outside \[0, 7\)"):
        codec.decode([7], space)


def test_codec_round_trips_a_multi_discrete_action():
    codec = GatoActionCodec(GatoDiscretizer())
    space = multi_discrete([3, 5])
    ids = codec.encode(np.array([2, 4]), space)
    assert ids.dtype == np.int64 and ids.tolist() == [2, 4]
    decoded = codec.decode(ids, space)
    assert decoded.dtype == np.int64 and decoded.tolist() == [2, 4]
    assert codec.token_ranges(space) == [(0, 3), (0, 5)]


def test_codec_round_trips_a_box_action_through_bin_centres():
    codec = GatoActionCodec(GatoDiscretizer())
    space = box([-2.0, 0.0], [2.0, 10.0])
    ids = codec.encode(np.array([1.0, 2.5]), space)
    # [-2, 2] -> [-1, 1]: 1.0 -> 0.5 -> bin floor(1.5 / 2 * 1024) = 768; [0, 10]: 2.5 -> -0.5 -> bin 256; no mu-law
    assert ids.tolist() == [32000 + 768, 32000 + 256]
    decoded = codec.decode(ids, space)
    # bin centres (768.5 / 512 - 1 and 256.5 / 512 - 1), mapped back to the bounds
    assert decoded.dtype == np.float32 and decoded.shape == (2,)
    assert decoded.tolist() == pytest.approx([-2 + (768.5 / 512) * 2, (256.5 / 512) * 5])
    assert codec.encode(np.array([5.0, -1.0]), space).tolist() == [33023, 32000]  # clipped to the bounds


def test_codec_token_ranges_are_the_discretizer_range():
    discretizer = GatoDiscretizer(num_bins=16, offset=100)
    codec = GatoActionCodec(discretizer, num_discrete_values=4)
    assert codec.token_ranges(box([-1.0] * 3, [1.0] * 3)) == [(100, 116)] * 3
    assert codec.encode(np.array([1.0, -1.0, 0.0]), box([-1.0] * 3, [1.0] * 3)).tolist() == [115, 100, 108]
    # discrete actions stay below num_discrete_values, even when the space allows more
    with pytest.raises(ValueError, match=r"discrete_actions: expected integers in \[0, 4\)"):
        codec.encode(np.array([4]), multi_discrete([6]))


def test_processor_action_methods_delegate_to_its_codec(processor):
    assert processor.action_codec.discretizer is processor.discretizer
    space = box([-2.0, 0.0], [2.0, 10.0])
    ids = processor.encode_action(np.array([1.0, 2.5]), space)
    assert ids.tolist() == processor.action_codec.encode(np.array([1.0, 2.5]), space).tolist() == [32768, 32256]
    assert processor.decode_action(ids, space).tolist() == processor.action_codec.decode(ids, space).tolist()
    ranges = processor.action_token_ranges(space)
    assert ranges == [(processor.discretizer.offset, processor.discretizer.offset + processor.discretizer.num_bins)] * 2


# ---------------------------------------------------------------------------- episode tokenizer
def tiny_episode():
    """Two timesteps: one continuous and two discrete observations, one white 4x4 image (one 4x4 patch), a
    continuous and a discrete action."""
    return {
        "continuous_observations": [[0.0], [1e9]],
        "discrete_observations": [[1, 2], [3, 4]],
        "image_observations": [np.full((4, 4, 3), 255, np.uint8)] * 2,
        "continuous_actions": [[1.0], [-1.0]],
        "discrete_actions": [[5], [6]],
    }


def test_episode_tokenizer_lays_out_a_tiny_episode(tokenizer):
    unit = GatoEpisodeTokenizer(GatoDiscretizer(), tokenizer, GatoImageProcessor(patch_size=4))
    pad = unit.pad_token_id
    tokens = unit.tokenize_episode(tiny_episode())
    # per step: [continuous obs (mu-law), discrete obs, image patch] [separator] [continuous action (no mu-law), discrete action]
    assert tokens["input_ids"].tolist() == [32512, 1, 2, pad, SEP, 33023, 5, 33023, 3, 4, pad, SEP, 32000, 6]
    assert tokens["local_positions"].tolist() == [0, 1, 2, 3, -1, -1, -1] * 2
    assert tokens["patch_mask"].tolist() == [False, False, False, True, False, False, False] * 2
    assert tokens["action_mask"].tolist() == [False] * 5 + [True, True] + [False] * 5 + [True, True]
    assert tokens["loss_mask"].tolist() == tokens["action_mask"].tolist()
    assert tokens["timestep_starts"].tolist() == [0, 7]
    assert tokens["patches"].shape == (2, 3, 4, 4) and np.all(tokens["patches"] == 0.25)  # white: 1 in [-1, 1], / 4
    assert tokens["patch_intervals"].tolist() == [[0.0, 1.0, 0.0, 1.0]] * 2


def test_episode_tokenizer_gives_the_processors_arrays(tokenizer):
    image_processor = GatoImageProcessor(patch_size=4)
    processor = GatoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    unit = GatoEpisodeTokenizer(GatoDiscretizer(), tokenizer, image_processor)
    episode = {**tiny_episode(), "text_observations": ["pick", {"b": "up", "a": "the ball"}]}
    expected = processor.tokenize_episode(episode)
    got = unit.tokenize_episode(episode)
    assert list(got) == list(expected)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
        assert got[key].dtype == expected[key].dtype, key
    # text comes last among a step's observations (after 1 continuous, 2 discrete, 1 patch), dict values in key order
    text = np.concatenate([tokenizer("the ball", add_special_tokens=False)["input_ids"], unit.tokenize_text("up")])
    step = got["input_ids"][got["timestep_starts"][1] :]
    assert step[4 : 4 + len(text) + 1].tolist() == [*text.tolist(), SEP]


def test_episode_tokenizer_settings(tokenizer):
    unit = GatoEpisodeTokenizer(
        GatoDiscretizer(), tokenizer, GatoImageProcessor(), separator_token_id=40000, num_discrete_values=3,
        local_position_size=2, include_rewards=True,
    )
    episode = {"discrete_observations": [[0, 1], [2, 2]], "rewards": [0.0, 5.0], "discrete_actions": [[1], [0]]}
    with pytest.raises(ValueError, match=r"step 1: 3 observation tokens, but local positions only go up to"):
        unit.tokenize_episode(episode)  # step 1 observes the reward of step 0 as well
    unit.local_position_size = 3
    # the reward of step t-1 is observed at step t: 0.0 -> mu-law bin 512
    assert unit.tokenize_episode(episode)["input_ids"].tolist() == [0, 1, 40000, 1, 2, 2, 32512, 40000, 0]
    with pytest.raises(ValueError, match=r"expected integers in \[0, 3\)"):
        unit.tokenize_episode({"discrete_observations": [[3]]})
    # acting: the observation and the separator, with the previous step's reward (no lag)
    observation = unit.tokenize_observation({"discrete_observations": [2, 0]}, reward=0.0)
    assert observation["input_ids"].tolist() == [2, 0, 32512, 40000]
    assert observation["local_positions"].tolist() == [0, 1, 2, -1]
    assert not observation["action_mask"].any() and observation["timestep_starts"].tolist() == [0]


def test_processor_single_pieces_delegate_to_its_episode_tokenizer(processor):
    unit = processor.episode_tokenizer
    assert unit.discretizer is processor.discretizer
    assert unit.tokenizer is processor.tokenizer and unit.image_processor is processor.image_processor
    assert processor.tokenize_text("hello world").tolist() == unit.tokenize_text("hello world").tolist()
    assert processor.tokenize_discrete({"b": [3], "a": [[1, 2]]}).tolist() == [1, 2, 3]  # keys in order
    assert processor.tokenize_continuous([0.0, 1e9]).tolist() == unit.tokenize_continuous([0.0, 1e9]).tolist()
    assert processor.tokenize_continuous([0.0, 1e9]).tolist() == [32512, 33023]


# ---------------------------------------------------------------------------- batch collation
def two_samples():
    """A: 3 tokens, a patch in slot 1, an action in slot 2. B: 2 tokens, no patch, an action in slot 1."""
    a = {
        "input_ids": np.array([10, 0, 11]),
        "patch_mask": np.array([False, True, False]),
        "local_positions": np.array([0, 1, -1]),
        "action_mask": np.array([False, False, True]),
        "loss_mask": np.array([False, False, True]),
        "patches": np.full((1, 3, 2, 2), 0.5, np.float32),
        "patch_intervals": np.array([[0.0, 1.0, 0.0, 0.5]], np.float32),
    }
    b = {
        "input_ids": np.array([20, 21]),
        "patch_mask": np.array([False, False]),
        "local_positions": np.array([0, -1]),
        "action_mask": np.array([False, True]),
        "loss_mask": np.array([False, True]),
        "patches": np.zeros((0, 3, 2, 2), np.float32),
        "patch_intervals": np.zeros((0, 4), np.float32),
    }
    return a, b


def test_collation_pads_on_the_right():
    batch = GatoBatchCollation(pad_token_id=7, max_length=4).collate(list(two_samples()), return_tensors="np")
    assert batch["input_ids"].tolist() == [[10, 0, 11], [20, 21, 7]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["local_positions"].tolist() == [[0, 1, -1], [0, -1, -1]]
    assert batch["patch_mask"].tolist() == [[False, True, False], [False, False, False]]
    assert batch["action_mask"].tolist() == batch["loss_mask"].tolist() == [[False, False, True], [False, True, False]]
    assert batch["image_patches"].shape == (2, 3, 3, 2, 2)
    assert batch["image_patches"][0, 1].tolist() == np.full((3, 2, 2), 0.5).tolist()
    assert not batch["image_patches"][0, [0, 2]].any() and not batch["image_patches"][1].any()
    assert batch["patch_intervals"][0].tolist() == [[0, 0, 0, 0], [0.0, 1.0, 0.0, 0.5], [0, 0, 0, 0]]
    assert "labels" not in batch


def test_collation_pads_on_the_left_to_max_length_with_labels():
    collation = GatoBatchCollation(pad_token_id=7, max_length=4)
    batch = collation.collate(
        list(two_samples()), return_tensors="np", padding="max_length", padding_side="left", return_labels=True
    )
    assert batch["input_ids"].tolist() == [[7, 10, 0, 11], [7, 7, 20, 21]]
    assert batch["attention_mask"].tolist() == [[0, 1, 1, 1], [0, 0, 1, 1]]
    assert batch["local_positions"].tolist() == [[-1, 0, 1, -1], [-1, -1, 0, -1]]
    assert batch["labels"].tolist() == [[-100, -100, -100, 11], [-100, -100, -100, 21]]
    assert batch["patch_intervals"][0, 2].tolist() == [0.0, 1.0, 0.0, 0.5]  # the patch moved with its slot


def test_collation_truncates_only_when_asked():
    a, b = two_samples()
    collation = GatoBatchCollation(pad_token_id=7, max_length=2)
    with pytest.raises(ValueError, match=r"sample 0 has 3 tokens, longer than the context max_length=2"):
        collation.collate([a, b], return_tensors="np")
    batch = collation.collate([a, b], return_tensors="np", truncation=True)
    assert batch["input_ids"].tolist() == [[10, 0], [20, 21]]
    assert batch["image_patches"][0, 1].tolist() == np.full((3, 2, 2), 0.5).tolist()  # the patch in slot 1 stays
    assert len(a["input_ids"]) == 3  # the samples themselves are not cut
    # cut before the patch slot: the patch goes too, and so does the image input
    batch = collation.collate([a], return_tensors="np", max_length=1, truncation=True)
    assert batch["input_ids"].tolist() == [[10]] and "image_patches" not in batch
    with pytest.raises(ValueError, match=r"padding=False needs samples of one length, got lengths \[3, 2\]"):
        GatoBatchCollation().collate([a, b], padding=False)


def test_processor_collate_delegates_to_its_collation(processor):
    assert processor.collation.pad_token_id == processor.pad_token_id
    assert processor.collation.max_length == processor.max_length
    samples = list(two_samples())
    expected = processor.collation.collate(samples, return_tensors="np", padding_side="left", return_labels=True)
    got = processor.collate(samples, return_tensors="np", padding_side="left", return_labels=True)
    assert list(got) == list(expected)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


# ---------------------------------------------------------------------------- composition
def test_units_are_built_from_the_settings_and_not_saved(tmp_path, tokenizer):
    processor = GatoProcessor(
        tokenizer=tokenizer, separator_token_id=40000, num_discrete_values=8, local_position_size=64, max_length=77,
        include_rewards=True, num_bins=256,
    )
    assert GatoProcessor.get_attributes() == ["image_processor", "tokenizer"]
    units = ("episode_tokenizer", "action_codec", "collation")
    assert not set(units) & set(processor.to_dict())
    processor.save_pretrained(tmp_path)
    with open(tmp_path / "processor_config.json") as f:
        saved = json.load(f)
    assert not set(units) & set(saved) and "discretizer" not in saved
    reloaded = GatoProcessor.from_pretrained(tmp_path)
    episode_tokenizer = reloaded.episode_tokenizer
    assert (episode_tokenizer.separator_token_id, episode_tokenizer.num_discrete_values) == (40000, 8)
    assert (episode_tokenizer.local_position_size, episode_tokenizer.include_rewards) == (64, True)
    assert episode_tokenizer.tokenizer is reloaded.tokenizer and episode_tokenizer.discretizer is reloaded.discretizer
    assert reloaded.action_codec.num_discrete_values == 8
    assert reloaded.action_token_ranges(box([-1.0], [1.0])) == [(32000, 32256)]
    assert (reloaded.collation.pad_token_id, reloaded.collation.max_length) == (reloaded.pad_token_id, 77)
