"""OrigamiDream/gato (gato-tf) Keras weights (`model.save_weights("x.weights.h5")`) -> our `save_pretrained` directory.

    python -m conversion.convert_keras_gato_weights gato.weights.h5 --output-dir gato-from-tf

Read with h5py only (no TensorFlow). Keras 3 stores every variable at `.../<layer>/vars/<i>`, layers of a list named
after their class (`transformer_block`, `transformer_block_1`, ...). Mapped, for every module both models have:

| gato-tf | ours | conversion |
|---|---|---|
| `discrete_embedding/.../vars/0` (V, W) | `embeddings.embed_tokens` (tied `lm_head`) | rows [0, text + bins) copied; the separator row is new; gato-tf's extra action rows dropped |
| `row_embedding`, `col_embedding` (128, W) | `patch_row_embedding`, `patch_col_embedding` | as they are |
| `local_position_encoding/.../vars/0` (N, W) | `local_position_embedding` | as it is (`local_position_size = N`) |
| `transformer_block{,_k}/attention/_{query,key,value}_dense` (W, H, D) / (H, D) | `layers.k.self_attn.{q,k,v}_proj` | reshaped to (W, H*D), transposed |
| `.../attention/_output_dense` (H, D, W) / (W,) | `layers.k.self_attn.o_proj` | reshaped to (H*D, W), transposed |
| `.../layer_norm1`, `layer_norm2` | `input_layernorm`, `post_attention_layernorm` | eps 1e-6 (`layer_norm_eps`) |
| `.../feed_forward/layers/{dense,dense_1}` | `mlp.fc_in`, `mlp.fc_out` | Dense kernels transposed |
| `residual_embedding` root conv 7x7 stride 2 + GroupNorm | `patch_embedding.stem` (+ `stem_norm`) | HWIO -> OIHW; bias 0 (gato-tf convs have none) |
| `residual_unit{,_1,_2}/{gn1,conv1,gn2,conv2,gn_proj,conv_proj}` | `patch_embedding.{norm1,conv1,norm2,conv2,norm_shortcut,conv_shortcut}`, then `extra_blocks.N.*` | HWIO -> OIHW; GroupNorm eps 1e-3 |
| `residual_embedding/conv_proj` (1x1, when `input_dim != layer_width`) | `patch_embedding.proj` | (1, 1, C, W) -> (W, C); identity when absent |

The converted config says so: `patch_stem_kernel_size=7, patch_stem_stride=2, patch_stem_activation=True,
patch_downsample=True, patch_residual_blocks=<units>, patch_group_norm_eps=1e-3` (TensorFlow "same" padding, which is
asymmetric for stride 2, is what our patch embedding applies for those convolutions). Not in gato-tf (kept as
initialised, listed as "new"): the final LayerNorm (identity), the separator row.

gato-tf's model differs from the paper (its attention is not causal and its feed-forward reads the block input, not
the attention output), so a converted model cannot reproduce gato-tf's outputs in a correct model: the parity that
holds is per module (patch embedding, each projection), which is what the tests check.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

import numpy as np

from ._common import atomic_directory, is_pickle_path, load_state_dict  # noqa: F401  (load_state_dict: safe loading)

KERAS_LAYER_NORM_EPS = 1e-6
KERAS_GROUP_NORM_EPS = 1e-3


def read_h5(path: str) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 file, by its path."""
    import h5py

    arrays: dict[str, np.ndarray] = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            arrays[name] = np.asarray(obj[()])

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return arrays


def _index(suffix: str | None) -> int:
    return int(suffix) if suffix else 0


class _Mapper:
    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self.used: set[str] = set()
        self.state: dict[str, np.ndarray] = {}
        self.log: list[tuple[str, str, str, str]] = []  # (kind, ours, source, note)

    def take(self, path: str) -> np.ndarray:
        self.used.add(path)
        return self.arrays[path]

    def put(self, ours: str, value: np.ndarray, source: str, note: str = "") -> None:
        self.state[ours] = np.ascontiguousarray(value, dtype=np.float32)
        self.log.append(("reshaped" if note else "mapped", ours, source, note))

    def find(self, pattern: str, ndim: int | None = None) -> list[tuple[str, re.Match]]:
        out = []
        for path in sorted(self.arrays):
            match = re.search(pattern, path)
            if match and (ndim is None or self.arrays[path].ndim == ndim):
                out.append((path, match))
        return out

    def one(self, pattern: str, what: str, ndim: int | None = None) -> str:
        found = self.find(pattern, ndim)
        if len(found) != 1:
            raise ValueError(f"gato-tf weights: expected one {what} (pattern {pattern!r}), found "
                             f"{[p for p, _ in found] or 'none'}.")
        return found[0][0]


def _conv(kernel: np.ndarray) -> np.ndarray:
    return kernel.transpose(3, 2, 0, 1)  # HWIO -> OIHW


def map_weights(arrays: dict[str, np.ndarray], text_vocab_size: int = 32000, num_continuous_bins: int = 1024,
                patch_size: int = 16, group_norm_groups: int = 32) -> tuple[dict[str, Any], _Mapper]:
    """gato-tf arrays -> (our GatoConfig kwargs, mapper with our state dict (numpy) and the log)."""
    m = _Mapper(arrays)
    # ------------------------------------------------------------ transformer blocks
    blocks: dict[int, dict[str, str]] = {}
    for path, match in m.find(r"(?:^|/)transformer_block(?:_(\d+))?/(.+)$"):
        blocks.setdefault(_index(match.group(1)), {})[match.group(2)] = path
    if not blocks:
        raise ValueError("gato-tf weights: no transformer_block found; is this a gato-tf `.weights.h5` (Keras 3)?")
    if sorted(blocks) != list(range(len(blocks))):
        raise ValueError(f"gato-tf weights: transformer blocks {sorted(blocks)} are not numbered 0..{len(blocks) - 1}.")
    first = blocks[0]

    def block_var(block: dict[str, str], pattern: str, what: str) -> str:
        found = [p for rest, p in block.items() if re.search(pattern, rest)]
        if len(found) != 1:
            raise ValueError(f"gato-tf weights: expected one {what} in a transformer block, found {found or 'none'}.")
        return found[0]

    q = arrays[block_var(first, r"attention/_query_dense/vars/0$", "query kernel")]
    hidden, heads, head_dim = q.shape
    ff = sorted(p for rest, p in first.items() if re.search(r"feed_forward/.*vars/0$", rest) and arrays[p].ndim == 2)
    if len(ff) != 2:
        raise ValueError(f"gato-tf weights: expected two feed-forward Dense kernels, found {ff}.")
    intermediate = max(arrays[p].shape[1] for p in ff)

    for index in range(len(blocks)):
        block, prefix = blocks[index], f"model.layers.{index}."
        for name, ours in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj")):
            kernel_path = block_var(block, rf"attention/_{name}_dense/vars/0$", f"{name} kernel")
            bias_path = block_var(block, rf"attention/_{name}_dense/vars/1$", f"{name} bias")
            kernel, bias = m.take(kernel_path), m.take(bias_path)
            m.put(prefix + f"self_attn.{ours}.weight", kernel.reshape(hidden, heads * head_dim).T, kernel_path,
                  f"{kernel.shape} -> reshape ({hidden}, {heads * head_dim}) -> transpose")
            m.put(prefix + f"self_attn.{ours}.bias", bias.reshape(-1), bias_path, f"{bias.shape} -> flatten")
        kernel_path = block_var(block, r"attention/_output_dense/vars/0$", "output kernel")
        bias_path = block_var(block, r"attention/_output_dense/vars/1$", "output bias")
        kernel = m.take(kernel_path)
        m.put(prefix + "self_attn.o_proj.weight", kernel.reshape(heads * head_dim, hidden).T, kernel_path,
              f"{kernel.shape} -> reshape ({heads * head_dim}, {hidden}) -> transpose")
        m.put(prefix + "self_attn.o_proj.bias", m.take(bias_path), bias_path)
        for source, ours in (("layer_norm1", "input_layernorm"), ("layer_norm2", "post_attention_layernorm")):
            m.put(prefix + f"{ours}.weight", m.take(block_var(block, rf"{source}/vars/0$", source)),
                  block_var(block, rf"{source}/vars/0$", source))
            m.put(prefix + f"{ours}.bias", m.take(block_var(block, rf"{source}/vars/1$", source)),
                  block_var(block, rf"{source}/vars/1$", source))
        kernels = sorted((p for rest, p in block.items() if re.search(r"feed_forward/.*vars/0$", rest)
                          and arrays[p].ndim == 2), key=lambda p: (arrays[p].shape != (hidden, intermediate), p))
        for kernel_path, ours in zip(kernels, ("fc_in", "fc_out")):
            bias_path = kernel_path[: -len("vars/0")] + "vars/1"
            m.put(prefix + f"mlp.{ours}.weight", m.take(kernel_path).T, kernel_path,
                  f"Dense kernel {arrays[kernel_path].shape} -> transpose")
            m.put(prefix + f"mlp.{ours}.bias", m.take(bias_path), bias_path)

    # ------------------------------------------------------------ embeddings
    token_path = m.one(r"(?:^|/)discrete_embedding/(?:.*/)?vars/0$", "token table (discrete_embedding)", 2)
    table = m.take(token_path)
    kept = text_vocab_size + num_continuous_bins
    if table.shape[0] < kept:
        raise ValueError(f"gato-tf token table has {table.shape[0]} rows, fewer than text + continuous = {kept}.")
    m.put("model.embeddings.embed_tokens.weight", table[:kept], token_path,
          f"rows [0, {kept}) of {table.shape}: text/discrete [0, {text_vocab_size}), continuous "
          f"[{text_vocab_size}, {kept}); rows [{kept}, {table.shape[0]}) dropped (gato-tf's overflow bin and action rows)")
    row_path = m.one(r"(?:^|/)row_embedding/(?:.*/)?vars/0$", "row_embedding", 2)
    col_path = m.one(r"(?:^|/)col_embedding/(?:.*/)?vars/0$", "col_embedding", 2)
    m.put("model.embeddings.patch_row_embedding.weight", m.take(row_path), row_path)
    m.put("model.embeddings.patch_col_embedding.weight", m.take(col_path), col_path)
    local_found = m.find(r"(?:^|/)local_position_encoding/(?:.*/)?vars/0$", 2)
    local_size = 512
    if local_found:
        local_path = local_found[0][0]
        m.put("model.embeddings.local_position_embedding.weight", m.take(local_path), local_path)
        local_size = arrays[local_path].shape[0]

    # ------------------------------------------------------------ patch ResNet
    root = [p for p, _ in m.find(r"residual_embedding/.*root.*vars/0$", 4)]
    if len(root) != 1:
        raise ValueError(f"gato-tf weights: expected one root convolution kernel under residual_embedding, found {root}.")
    root_kernel = m.take(root[0])
    k, _, in_channels, channels = root_kernel.shape
    m.put("model.embeddings.patch_embedding.stem.weight", _conv(root_kernel), root[0], f"HWIO {root_kernel.shape} -> OIHW")
    m.state["model.embeddings.patch_embedding.stem.bias"] = np.zeros(channels, np.float32)
    m.log.append(("new", "model.embeddings.patch_embedding.stem.bias", "-", "zeros (gato-tf's conv has no bias)"))
    root_norm = [p for p, _ in m.find(r"residual_embedding/.*root.*(?:group_norm|gn)[^/]*/vars/[01]$", 1)]
    root_norm = sorted(root_norm, key=lambda p: p[-1])
    if len(root_norm) != 2:
        raise ValueError(f"gato-tf weights: expected the root GroupNorm's gamma and beta, found {root_norm}.")
    m.put("model.embeddings.patch_embedding.stem_norm.weight", m.take(root_norm[0]), root_norm[0])
    m.put("model.embeddings.patch_embedding.stem_norm.bias", m.take(root_norm[1]), root_norm[1])

    units: dict[int, dict[str, dict[int, str]]] = {}
    for path, match in m.find(r"residual_embedding/(?:.*/)?residual_unit(?:_(\d+))?/(gn1|gn2|gn_proj|conv1|conv2|conv_proj)/vars/(\d)$"):
        units.setdefault(_index(match.group(1)), {}).setdefault(match.group(2), {})[int(match.group(3))] = path
    if sorted(units) != list(range(len(units))) or not units:
        raise ValueError(f"gato-tf weights: residual units {sorted(units)} are missing or not numbered from 0.")
    names = {"gn1": "norm1", "conv1": "conv1", "gn2": "norm2", "conv2": "conv2", "gn_proj": "norm_shortcut",
             "conv_proj": "conv_shortcut"}
    unit_channels = channels
    for index in range(len(units)):
        prefix = "model.embeddings.patch_embedding." + ("" if index == 0 else f"extra_blocks.{index - 1}.")
        unit = units[index]
        for source, ours in names.items():
            if source not in unit:
                raise ValueError(f"gato-tf weights: residual unit {index} has no {source}.")
            if source.startswith("gn"):
                m.put(prefix + f"{ours}.weight", m.take(unit[source][0]), unit[source][0])
                m.put(prefix + f"{ours}.bias", m.take(unit[source][1]), unit[source][1])
            else:
                kernel = m.take(unit[source][0])
                m.put(prefix + f"{ours}.weight", _conv(kernel), unit[source][0], f"HWIO {kernel.shape} -> OIHW")
                if ours != "conv_shortcut":
                    m.state[prefix + f"{ours}.bias"] = np.zeros(kernel.shape[-1], np.float32)
                    m.log.append(("new", prefix + f"{ours}.bias", "-", "zeros (gato-tf's conv has no bias)"))
        expected = 2 * unit_channels
        got = arrays[unit["conv2"][0]].shape[-1]
        if got != expected:
            raise ValueError(f"gato-tf residual unit {index}: {got} output channels, expected {expected} "
                             "(each unit doubles the channels).")
        unit_channels = expected
    size = -(-patch_size // 2)
    for _ in units:
        size = -(-size // 2)
    if size != 1:
        raise ValueError(f"gato-tf patch ResNet leaves a {size}x{size} map for {patch_size}-pixel patches; expected 1x1.")
    proj = m.find(r"residual_embedding/conv_proj/vars/0$", 4)
    if proj:
        kernel = m.take(proj[0][0])
        m.put("model.embeddings.patch_embedding.proj.weight", kernel[0, 0].T, proj[0][0],
              f"1x1 conv {kernel.shape} -> Linear ({kernel.shape[-1]}, {kernel.shape[-2]})")
    else:
        if unit_channels != hidden:
            raise ValueError(f"gato-tf patch ResNet ends with {unit_channels} channels, no conv_proj, width {hidden}.")
        m.state["model.embeddings.patch_embedding.proj.weight"] = np.eye(hidden, dtype=np.float32)
        m.log.append(("new", "model.embeddings.patch_embedding.proj.weight", "-",
                      "identity (gato-tf has no projection when input_dim == layer_width)"))
    m.state["model.embeddings.patch_embedding.proj.bias"] = np.zeros(hidden, np.float32)
    m.log.append(("new", "model.embeddings.patch_embedding.proj.bias", "-", "zeros"))

    config = dict(
        vocab_size=kept + 1, text_vocab_size=text_vocab_size, continuous_offset=text_vocab_size,
        num_continuous_bins=num_continuous_bins, separator_token_id=kept,
        hidden_size=int(hidden), num_hidden_layers=len(blocks), num_attention_heads=int(heads), head_dim=int(head_dim),
        intermediate_size=int(intermediate), layer_norm_eps=KERAS_LAYER_NORM_EPS,
        patch_size=patch_size, num_channels=int(in_channels), patch_embedding_channels=int(channels),
        patch_group_norm_groups=group_norm_groups, patch_residual_blocks=len(units), patch_stem_kernel_size=int(k),
        patch_stem_stride=2, patch_stem_activation=True, patch_downsample=True,
        patch_group_norm_eps=KERAS_GROUP_NORM_EPS, patch_position_bins=int(arrays[row_path].shape[0]),
        local_position_size=int(local_size),
    )
    return config, m


def convert(path: str, output_dir: str | None = None, overwrite: bool = False, text_vocab_size: int = 32000,
            num_continuous_bins: int = 1024, patch_size: int = 16, group_norm_groups: int = 32,
            verbose: bool = True):
    """Convert; returns (model, report). Writes `output_dir` (model + processor, safetensors) when given."""
    import torch

    from modeling_gato import GatoConfig, GatoForCausalModeling, GatoProcessor

    if is_pickle_path(path) or path.endswith(".safetensors"):
        raise ValueError(f"{path}: expected a Keras `.weights.h5` (HDF5) file from gato-tf's save_weights.")
    arrays = read_h5(path)
    config_kwargs, m = map_weights(arrays, text_vocab_size, num_continuous_bins, patch_size, group_norm_groups)
    config = GatoConfig(**config_kwargs)
    torch.manual_seed(0)
    model = GatoForCausalModeling(config)
    state = model.state_dict()
    new_state = {}
    for name, tensor in state.items():
        if name == "lm_head.weight":
            continue  # tied to the token table
        if name in m.state:
            value = torch.from_numpy(m.state[name])
            if name.endswith("embed_tokens.weight") and value.shape[0] == tensor.shape[0] - 1:
                value = torch.cat([value, tensor[-1:]])  # the separator: no gato-tf counterpart
                m.log.append(("new", f"{name}[{tensor.shape[0] - 1}]", "-", "separator row, kept as initialised"))
            if tuple(value.shape) != tuple(tensor.shape):
                raise ValueError(f"{name}: converted shape {tuple(value.shape)} != model shape {tuple(tensor.shape)}.")
            new_state[name] = value
        else:
            new_state[name] = tensor
            m.log.append(("new", name, "-", "not in gato-tf: kept as initialised"))
    missing, unexpected = model.load_state_dict(new_state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    model.tie_weights()
    dropped = sorted(set(arrays) - m.used)
    report = {"config": config_kwargs, "log": m.log, "dropped": dropped}
    if verbose:
        print(format_report(report))
    if output_dir is not None:
        with atomic_directory(output_dir, overwrite) as partial:
            model.save_pretrained(partial)
            GatoProcessor().save_pretrained(partial)
            with open(f"{partial}/README.md", "w") as f:
                f.write(model_card(path, report))
    return model, report


def model_card(path: str, report: dict[str, Any]) -> str:
    kinds = {k: sum(1 for e in report["log"] if e[0] == k) for k in ("mapped", "reshaped", "new")}
    return "\n".join([
        "---", "library_name: transformers", "tags: [gato, generalist-agent, converted-from-gato-tf]", "---", "",
        "# Gato converted from OrigamiDream/gato (gato-tf)", "",
        f"Converted from `{path}` by `python -m conversion.convert_keras_gato_weights` (modeling_gato): "
        f"{kinds['mapped']} tensors mapped, {kinds['reshaped']} reshaped, {kinds['new']} newly initialised, "
        f"{len(report['dropped'])} source tensors dropped.", "",
        "## Training data and scores", "",
        "Whatever the gato-tf checkpoint was trained on; this conversion adds no training and no evaluation. "
        "gato-tf's model is not the paper's (non-causal attention, feed-forward on the block input), so the "
        "converted modules match per module, not the whole network's outputs: fine-tune before use.", "",
        "## Load", "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoProcessor",
        "",
        'repo_id = "path/to/this/directory"  # or the Hub id it was pushed to',
        "model = AutoModelForCausalLM.from_pretrained(repo_id, trust_remote_code=True)",
        "processor = AutoProcessor.from_pretrained(repo_id, trust_remote_code=True)",
        "```", "",
    ])


def format_report(report: dict[str, Any]) -> str:
    lines = []
    for kind in ("mapped", "reshaped", "new"):
        entries = [e for e in report["log"] if e[0] == kind]
        lines.append(f"{kind} ({len(entries)}):")
        lines += [f"  {ours} <- {source}" + (f"  [{note}]" if note else "") for _, ours, source, note in entries]
    lines.append(f"dropped ({len(report['dropped'])}):")
    lines += [f"  {path}" for path in report["dropped"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conversion.convert_keras_gato_weights",
        description="Convert OrigamiDream/gato (gato-tf) Keras `.weights.h5` into a modeling_gato save_pretrained "
        "directory (safetensors), reading HDF5 with h5py (no TensorFlow). Prints what was mapped, reshaped, "
        "newly initialised and dropped.",
    )
    parser.add_argument("weights", help="the .weights.h5 file written by Keras `model.save_weights`")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--text-vocab-size", type=int, default=32000, help="gato-tf's vocabulary_size")
    parser.add_argument("--continuous-bins", type=int, default=1024, help="gato-tf's continuous_values_size")
    parser.add_argument("--patch-size", type=int, default=16, help="gato-tf's img_patch_size")
    parser.add_argument("--group-norm-groups", type=int, default=32, help="gato-tf's num_group_norm_groups")
    args = parser.parse_args(argv)
    convert(args.weights, args.output_dir, args.overwrite, args.text_vocab_size, args.continuous_bins,
            args.patch_size, args.group_norm_groups)
    print(f"wrote {args.output_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
