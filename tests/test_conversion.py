"""conversion/: Minari and JAT datasets -> our episode directory (then training), gato-tf Keras weights -> our model
(per-module parity against NumPy), gato-torch config (and the refusal of its weights), safe loading, push_to_hub."""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("h5py")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------- datasets
def _record_minari(root: str) -> None:
    pytest.importorskip("minari")
    from minari_testing import record_random_minari_dataset

    record_random_minari_dataset("CartPole-v1", "cartpole/random-v0", 4, ref_min_score=20.0, ref_max_score=500.0)
    record_random_minari_dataset("Pendulum-v1", "pendulum/random-v0", 3, env_kwargs={"max_episode_steps": 40})


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Minari (CartPole + Pendulum, recorded here) and JAT-layout rows (built here), both converted."""
    import minari  # noqa: F401
    from datasets import Dataset

    from conversion import convert_jat_dataset, convert_minari_dataset

    root = tmp_path_factory.mktemp("conversion")
    minari_root = str(root / "minari")
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = minari_root
    try:
        _record_minari(minari_root)
        minari_out = str(root / "minari-converted")
        convert_minari_dataset.convert(
            ["cartpole/random-v0", os.path.join(minari_root, "pendulum/random-v0")], minari_out, progress=False)
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old

    rng = np.random.default_rng(0)
    jat = root / "jat"
    mujoco = {"continuous_observations": [rng.normal(size=(12, 5)).tolist() for _ in range(3)],
              "continuous_actions": [(rng.uniform(-1.2, 1.2, size=(12, 2))).tolist() for _ in range(3)],
              "rewards": [rng.normal(size=12).tolist() for _ in range(3)]}
    Dataset.from_dict(mujoco).save_to_disk(str(jat / "mujoco-tiny"))
    babyai = {"discrete_observations": [rng.integers(0, 10, size=(6, 4)).tolist() for _ in range(3)],
              "text_observations": [["go to the red ball"] * 6 for _ in range(3)],
              "discrete_actions": [rng.integers(0, 7, size=6).tolist() for _ in range(3)],
              "rewards": [[0.0] * 5 + [1.0] for _ in range(3)]}
    Dataset.from_dict(babyai).save_to_disk(str(jat / "babyai-tiny"))
    atari = {"image_observations": [[rng.integers(0, 255, size=(32, 32, 4), dtype=np.uint8) for _ in range(4)]
                                    for _ in range(3)],
             "discrete_actions": [rng.integers(0, 6, size=4).tolist() for _ in range(3)],
             "rewards": [[0.0, 1.0, 0.0, 0.0] for _ in range(3)]}
    Dataset.from_dict(atari).save_to_disk(str(jat / "atari-tiny"))
    Dataset.from_dict({"text": ["a paragraph of text about agents."] * 5}).save_to_disk(str(jat / "oscar"))
    scores = {"mujoco-tiny": {"expert": {"mean": 10.0, "std": 1.0}, "random": {"mean": -3.0}}}
    (jat / "scores_dict.json").write_text(json.dumps(scores))
    jat_out = str(root / "jat-converted")
    convert_jat_dataset.convert([str(jat / n) for n in ("mujoco-tiny", "babyai-tiny", "atari-tiny", "oscar")],
                                jat_out, scores_path=str(jat / "scores_dict.json"), progress=False)
    return {"root": root, "minari": minari_out, "jat": jat_out, "minari_root": minari_root, "jat_sources": jat}


def test_minari_conversion(converted):
    from datasets import load_from_disk

    out = converted["minari"]
    assert sorted(os.listdir(out)) == ["episodes", "manifest.json", "scores.json"]
    assert not [p for p in os.listdir(converted["root"]) if ".partial-" in p]  # atomic: nothing left beside
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert set(manifest["tasks"]) == {"CartPole-v1", "Pendulum-v1"}
    assert manifest["tasks"]["CartPole-v1"]["action_space"]["type"] == "Discrete"
    scores = json.load(open(os.path.join(out, "scores.json")))
    assert scores["CartPole-v1"]["expert"]["mean_return"] == 500.0
    assert scores["CartPole-v1"]["random"]["mean_return"] == 20.0
    assert "Pendulum-v1" not in scores  # no references in that dataset

    import minari
    from minari.dataset.minari_dataset import MinariDataset

    source = MinariDataset(os.path.join(converted["minari_root"], "pendulum/random-v0", "data"))
    episode = next(source.iterate_episodes([0]))
    rows = load_from_disk(os.path.join(out, "episodes", "Pendulum-v1"))
    assert len(rows) == 3 and manifest["tasks"]["Pendulum-v1"]["episodes"] == 3
    row = rows[0]
    steps = len(episode.rewards)
    assert len(row["continuous_observations"]) == steps  # T observations (Minari keeps T+1)
    np.testing.assert_allclose(row["continuous_observations"], episode.observations[:steps], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(row["continuous_actions"]) * 2.0, episode.actions, rtol=1e-5, atol=1e-6)
    cart = load_from_disk(os.path.join(out, "episodes", "CartPole-v1"))[0]
    assert all(isinstance(a, int) and a in (0, 1) for a in cart["discrete_actions"])
    assert minari is not None


def test_jat_conversion(converted):
    from datasets import load_from_disk

    out = converted["jat"]
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert set(manifest["tasks"]) == {"mujoco-tiny", "babyai-tiny", "atari-tiny"}
    assert manifest["tasks"]["mujoco-tiny"]["domain"] == "mujoco"
    assert manifest["tasks"]["mujoco-tiny"]["clipped_action_values"] > 0
    assert manifest["text"]["rows"] == 5 and os.path.isdir(os.path.join(out, "text"))
    scores = json.load(open(os.path.join(out, "scores.json")))
    assert scores["mujoco-tiny"]["expert"]["mean_return"] == 10.0 and scores["mujoco-tiny"]["random"]["mean_return"] == -3.0
    mujoco = load_from_disk(os.path.join(out, "episodes", "mujoco-tiny"))[0]
    assert np.abs(np.asarray(mujoco["continuous_actions"])).max() <= 1.0
    babyai = load_from_disk(os.path.join(out, "episodes", "babyai-tiny"))[0]
    assert babyai["text_observations"][0] == "go to the red ball" and len(babyai["discrete_observations"][0]) == 4
    source = load_from_disk(str(converted["jat_sources"] / "atari-tiny"))[0]["image_observations"][0]
    image = np.asarray(load_from_disk(os.path.join(out, "episodes", "atari-tiny"))[0]["image_observations"][0])
    np.testing.assert_array_equal(image, np.asarray(source)[..., -1])  # the most recent of the 4 stacked frames


def test_converted_data_trains(converted, tmp_path):
    from modeling_gato.training.train import TrainConfig, train

    summary = train(TrainConfig(data=[converted["minari"], converted["jat"]], output_dir=str(tmp_path / "model"),
                                variant="tiny", context_length=128, max_steps=3, batch_size=2, eval_episodes=1,
                                eval_samples_per_task=1, eval_steps=1000, save_steps=1000, logging_steps=1,
                                warmup_steps=1))
    assert summary["global_step"] == 3 and math.isfinite(summary["train_loss"])


def test_conversion_output_is_atomic(converted, tmp_path):
    from conversion import convert_jat_dataset

    with pytest.raises(FileExistsError):
        convert_jat_dataset.convert([str(converted["jat_sources"] / "mujoco-tiny")], converted["jat"], progress=False)
    target = tmp_path / "broken"
    with pytest.raises(ValueError, match="unknown JAT row"):
        from datasets import Dataset

        Dataset.from_dict({"something": [1, 2]}).save_to_disk(str(tmp_path / "bad"))
        convert_jat_dataset.convert([str(tmp_path / "bad")], str(target), progress=False)
    assert not target.exists() and not [p for p in os.listdir(tmp_path) if ".partial-" in p]


@pytest.mark.parametrize("module", ["convert_minari_dataset", "convert_jat_dataset", "convert_keras_gato_weights",
                                    "convert_gato_torch_config"])
def test_cli_help(module):
    result = subprocess.run([sys.executable, "-m", f"conversion.{module}", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "--output-dir" in result.stdout


# ---------------------------------------------------------------------------- gato-tf Keras weights
W, H, D, F, BLOCKS, C0, GROUPS, UNITS = 32, 2, 16, 64, 2, 16, 8, 3
VOCAB = 32000 + 1024 + 1024 + 1


def _keras_arrays(rng) -> dict[str, np.ndarray]:
    def n(*shape):
        return rng.normal(scale=0.2, size=shape).astype(np.float32)

    pe = "layers/patch_embedding/residual_embedding/"
    a = {
        "layers/discrete_embedding/embedding/vars/0": n(VOCAB, W),
        "layers/patch_embedding/pos_encoding/row_embedding/vars/0": n(128, W),
        "layers/patch_embedding/pos_encoding/col_embedding/vars/0": n(128, W),
        "layers/local_position_encoding/embedding/vars/0": n(1024, W),
        pe + "root_conv/layers/conv2d/vars/0": n(7, 7, 3, C0),
        pe + "root_conv/layers/group_normalization/vars/0": 1 + n(C0),
        pe + "root_conv/layers/group_normalization/vars/1": n(C0),
        pe + "conv_proj/vars/0": n(1, 1, C0 * 2 ** UNITS, W),
        "optimizer/vars/0": n(3),  # not a model tensor: must be listed as dropped
    }
    channels = C0
    for i in range(UNITS):
        unit = pe + "residual_units/residual_unit" + (f"_{i}" if i else "") + "/"
        f = 2 * channels
        a.update({
            unit + "gn1/vars/0": 1 + n(channels), unit + "gn1/vars/1": n(channels),
            unit + "gn2/vars/0": 1 + n(f // 2), unit + "gn2/vars/1": n(f // 2),
            unit + "gn_proj/vars/0": 1 + n(channels), unit + "gn_proj/vars/1": n(channels),
            unit + "conv1/vars/0": n(3, 3, channels, f // 2), unit + "conv2/vars/0": n(3, 3, f // 2, f),
            unit + "conv_proj/vars/0": n(1, 1, channels, f),
        })
        channels = f
    for b in range(BLOCKS):
        block = "layers/transformer/layers/transformer_block" + (f"_{b}" if b else "") + "/"
        for name in ("query", "key", "value"):
            a[block + f"attention/_{name}_dense/vars/0"] = n(W, H, D)
            a[block + f"attention/_{name}_dense/vars/1"] = n(H, D)
        a[block + "attention/_output_dense/vars/0"] = n(H, D, W)
        a[block + "attention/_output_dense/vars/1"] = n(W)
        for ln in ("layer_norm1", "layer_norm2"):
            a[block + f"{ln}/vars/0"], a[block + f"{ln}/vars/1"] = 1 + n(W), n(W)
        a[block + "feed_forward/layers/dense/vars/0"], a[block + "feed_forward/layers/dense/vars/1"] = n(W, F), n(F)
        a[block + "feed_forward/layers/dense_1/vars/0"], a[block + "feed_forward/layers/dense_1/vars/1"] = n(F, W), n(W)
    return a


def _write_h5(path, arrays):
    import h5py

    with h5py.File(path, "w") as f:
        for name, value in arrays.items():
            f.create_dataset(name, data=value)


# NumPy reference of gato-tf's patch ResNet (NHWC, TensorFlow "same" padding, GroupNorm eps 1e-3, exact GELU).
_erf = np.vectorize(math.erf)


def _gelu(x):
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def _group_norm(x, gamma, beta, groups=GROUPS, eps=1e-3):
    b, h, w, c = x.shape
    g = x.reshape(b, h, w, groups, c // groups)
    mean = g.mean(axis=(1, 2, 4), keepdims=True)
    var = g.var(axis=(1, 2, 4), keepdims=True)
    return ((g - mean) / np.sqrt(var + eps)).reshape(b, h, w, c) * gamma + beta


def _conv_same(x, kernel, stride):
    k = kernel.shape[0]
    b, h, w, _ = x.shape
    out_h, out_w = -(-h // stride), -(-w // stride)
    pad_h = max((out_h - 1) * stride + k - h, 0)
    pad_w = max((out_w - 1) * stride + k - w, 0)
    x = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    out = np.zeros((b, out_h, out_w, kernel.shape[-1]), np.float64)
    for i in range(k):
        for j in range(k):
            window = x[:, i: i + stride * out_h: stride, j: j + stride * out_w: stride, :]
            out += np.einsum("bhwc,co->bhwo", window, kernel[i, j])
    return out


def _reference_patch_embedding(a, patches_nhwc):
    pe = "layers/patch_embedding/residual_embedding/"
    x = _conv_same(patches_nhwc, a[pe + "root_conv/layers/conv2d/vars/0"], 2)
    x = _gelu(_group_norm(x, a[pe + "root_conv/layers/group_normalization/vars/0"],
                          a[pe + "root_conv/layers/group_normalization/vars/1"]))
    for i in range(UNITS):
        u = pe + "residual_units/residual_unit" + (f"_{i}" if i else "") + "/"
        residual = _conv_same(_group_norm(x, a[u + "gn_proj/vars/0"], a[u + "gn_proj/vars/1"]), a[u + "conv_proj/vars/0"], 2)
        y = _conv_same(_gelu(_group_norm(x, a[u + "gn1/vars/0"], a[u + "gn1/vars/1"])), a[u + "conv1/vars/0"], 1)
        y = _conv_same(_gelu(_group_norm(y, a[u + "gn2/vars/0"], a[u + "gn2/vars/1"])), a[u + "conv2/vars/0"], 2)
        x = y + residual
    x = _conv_same(x, a[pe + "conv_proj/vars/0"], 1)
    return x.reshape(len(x), -1)


def test_keras_gato_weights_per_module_parity(tmp_path, capsys):
    from conversion import convert_keras_gato_weights
    from modeling_gato import GatoForCausalModeling

    rng = np.random.default_rng(0)
    arrays = _keras_arrays(rng)
    path = str(tmp_path / "gato.weights.h5")
    _write_h5(path, arrays)
    out = str(tmp_path / "converted")
    model, report = convert_keras_gato_weights.convert(path, out, group_norm_groups=GROUPS)
    printed = capsys.readouterr().out
    assert "mapped (" in printed and "reshaped (" in printed and "dropped (" in printed
    assert report["dropped"] == ["optimizer/vars/0"]
    assert model.config.patch_residual_blocks == UNITS and model.config.local_position_size == 1024
    assert os.path.exists(os.path.join(out, "model.safetensors")) and os.path.exists(os.path.join(out, "README.md"))
    assert "trust_remote_code=True" in open(os.path.join(out, "README.md")).read()
    reloaded = GatoForCausalModeling.from_pretrained(out).eval()

    # Patch embedding (the whole gato-tf residual embedding) against the NumPy reference.
    patches = rng.uniform(-0.25, 0.25, size=(3, 16, 16, 3))
    expected = _reference_patch_embedding(arrays, patches)
    with torch.no_grad():
        got = reloaded.model.embeddings.patch_embedding(torch.tensor(patches, dtype=torch.float32).permute(0, 3, 1, 2))
    np.testing.assert_allclose(got.numpy(), expected, rtol=2e-4, atol=2e-4)

    # Attention projections of every block (Keras EinsumDense: x @ (W, H, D) + (H, D); output (H, D, W) + (W,)).
    x = rng.normal(size=(5, W))
    for b in range(BLOCKS):
        block = "layers/transformer/layers/transformer_block" + (f"_{b}" if b else "") + "/"
        attn = reloaded.model.layers[b].self_attn
        with torch.no_grad():
            for name, proj in (("query", attn.q_proj), ("key", attn.k_proj), ("value", attn.v_proj)):
                ref = np.einsum("bw,whd->bhd", x, arrays[block + f"attention/_{name}_dense/vars/0"])
                ref = (ref + arrays[block + f"attention/_{name}_dense/vars/1"]).reshape(5, H * D)
                np.testing.assert_allclose(proj(torch.tensor(x, dtype=torch.float32)).numpy(), ref, rtol=1e-4, atol=1e-4)
            heads = rng.normal(size=(5, H, D))
            ref = np.einsum("bhd,hdw->bw", heads, arrays[block + "attention/_output_dense/vars/0"])
            ref = ref + arrays[block + "attention/_output_dense/vars/1"]
            got = attn.o_proj(torch.tensor(heads.reshape(5, H * D), dtype=torch.float32)).numpy()
            np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
            ref = x @ arrays[block + "feed_forward/layers/dense/vars/0"] + arrays[block + "feed_forward/layers/dense/vars/1"]
            got = reloaded.model.layers[b].mlp.fc_in(torch.tensor(x, dtype=torch.float32)).numpy()
            np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    table = reloaded.get_input_embeddings().weight.detach().numpy()
    np.testing.assert_array_equal(table[:33024], arrays["layers/discrete_embedding/embedding/vars/0"][:33024])
    assert reloaded.lm_head.weight.data_ptr() == reloaded.get_input_embeddings().weight.data_ptr()


def test_patch_residual_blocks_keep_default_names():
    from modeling_gato import GatoConfig, GatoForCausalModeling

    tiny = dict(hidden_size=64, num_hidden_layers=1, num_attention_heads=2, head_dim=32, intermediate_size=128)
    default = {k for k in GatoForCausalModeling(GatoConfig(**tiny)).state_dict() if "patch_embedding" in k}
    assert {k.split("patch_embedding.")[1].split(".")[0] for k in default} == {
        "stem", "norm1", "conv1", "norm2", "conv2", "proj"}
    deeper = GatoForCausalModeling(GatoConfig(**tiny, patch_residual_blocks=3))
    names = {k for k in deeper.state_dict() if "patch_embedding" in k}
    assert default <= names and any("patch_embedding.extra_blocks.1.conv2.weight" in k for k in names)
    with pytest.raises(ValueError, match="patch_residual_blocks"):
        GatoConfig(**tiny, patch_residual_blocks=0)


# ---------------------------------------------------------------------------- gato-torch
def test_gato_torch_config():
    from conversion.convert_gato_torch_config import convert_config

    config, mapping = convert_config(input_dim=768, img_patch_size=16, token_sequence_length=1024, vocabulary_size=32000,
                                     actions_size=1024, continuous_values_size=1024, num_transformer_blocks=8,
                                     num_attention_heads=24, layer_width=768, feedforward_hidden_size=3072,
                                     key_value_size=32, dropout_rate=0.1, num_group_norm_groups=32, discretize_depth=128,
                                     local_position_encoding_size=512, max_seq_len=1024)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.head_dim,
            config.intermediate_size) == (8, 768, 24, 32, 3072)
    assert config.vocab_size == 33025 and config.separator_token_id == 33024 and config.num_channels == 3
    assert config.max_position_embeddings == 1024 and config.hidden_dropout == 0.1 and config.local_position_size == 512
    assert mapping["key_value_size"] == "head_dim"

    class TorchStyleConfig:  # gato-torch's GatoConfig is a plain object with these attributes
        def __init__(self):
            self.num_transformer_blocks, self.layer_width, self.num_attention_heads, self.key_value_size = 2, 64, 2, 32

    assert convert_config(TorchStyleConfig())[0].num_hidden_layers == 2
    with pytest.raises(ValueError, match="unknown gato-torch config names"):
        convert_config(hidden=3)
    with pytest.raises(ValueError, match="input_dim"):
        convert_config(input_dim=700)
    with pytest.raises(ValueError, match="num_attention_heads"):
        convert_config(layer_width=100)


def _gato_torch_state():
    return {
        "image_embedding.residual_embedding.root_conv.0.weight": torch.zeros(96, 768, 1, 1),
        "image_embedding.residual_embedding.residual_units.0.conv1.weight": torch.zeros(96, 192, 3, 3),
        "transformer.encoders.0.feed_forward.0.weight": torch.zeros(8, 4),
        "transformer.encoders.0.layer_norm1.weight": torch.zeros(4),
    }


def test_gato_torch_weights_refused_with_reason(tmp_path):
    from safetensors.torch import save_file

    from conversion._common import PickleRefusedError
    from conversion.convert_gato_torch_config import GatoTorchWeightsError, convert_weights, main

    pt = str(tmp_path / "gato_torch.pt")
    torch.save(_gato_torch_state(), pt)
    with pytest.raises(PickleRefusedError, match="--allow-pickle"):
        convert_weights(pt)
    with pytest.raises(GatoTorchWeightsError, match="no projection weights") as error:
        convert_weights(pt, allow_pickle=True)
    assert "inconsistent shapes" in str(error.value) and "attention projection tensors: 0" in str(error.value)
    st = str(tmp_path / "gato_torch.safetensors")
    save_file(_gato_torch_state(), st)
    with pytest.raises(GatoTorchWeightsError, match="cannot be converted"):
        convert_weights(st)
    assert main(["--weights", st]) == 2


# ---------------------------------------------------------------------------- safe loading
class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_inputs_refused_then_weights_only(tmp_path):
    from conversion._common import PickleRefusedError, load_state_dict

    good = str(tmp_path / "good.bin")
    torch.save({"w": torch.ones(2)}, good)
    with pytest.raises(PickleRefusedError):
        load_state_dict(good)
    assert torch.equal(load_state_dict(good, allow_pickle=True)["w"], torch.ones(2))
    evil = str(tmp_path / "evil.pt")
    with open(evil, "wb") as f:
        pickle.dump({"w": _Payload()}, f)
    with pytest.raises(pickle.UnpicklingError):  # weights_only=True refuses arbitrary objects even when allowed
        load_state_dict(evil, allow_pickle=True)


# ---------------------------------------------------------------------------- sharing
def test_push_to_hub_through_the_mixins(tmp_path, monkeypatch):
    import shutil

    import huggingface_hub
    from huggingface_hub import HfApi, ModelCard
    from huggingface_hub.errors import EntryNotFoundError

    from modeling_gato import GatoConfig, GatoForCausalModeling, GatoProcessor

    captured = tmp_path / "hub"
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id))
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_commit(self, repo_id, operations, **kwargs):
        calls.append(("create_commit", repo_id))
        for op in operations:  # the network call: capture the files instead
            target = captured / op.path_in_repo
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(op.path_or_fileobj, target)
        return None

    def no_remote_card(*args, **kwargs):
        raise EntryNotFoundError("no card yet")

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    monkeypatch.setattr(ModelCard, "load", classmethod(lambda cls, *a, **k: no_remote_card()))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")

    model = GatoForCausalModeling(GatoConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=2, head_dim=32,
                                             intermediate_size=128))
    model.push_to_hub("someone/gato-test")
    GatoProcessor().push_to_hub("someone/gato-test")
    files = {p.name for p in captured.rglob("*")}
    assert {"model.safetensors", "config.json", "modeling_gato.py", "configuration_gato.py", "README.md"} <= files
    assert {"processing_gato.py", "image_processing_gato.py", "tokenizer.json"} <= files
    assert any(f.startswith("processor_config") or f == "preprocessor_config.json" for f in files)
    assert not any(f.endswith((".bin", ".pt")) for f in files)
    assert json.load(open(captured / "config.json"))["auto_map"]["AutoModelForCausalLM"].endswith("GatoForCausalModeling")
    assert "library_name: transformers" in (captured / "README.md").read_text()
    assert ("create_commit", "someone/gato-test") in calls
