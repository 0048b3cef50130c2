"""gato-torch (PyPI `gato-torch`, GitHub kyegomez/GATO) configuration -> our `GatoConfig`; its weights: a clear refusal.

    python -m conversion.convert_gato_torch_config --output-dir gato-config layer_width=768 num_attention_heads=24
    python -m conversion.convert_gato_torch_config --json gato_torch_config.json --output-dir gato-config
    python -m conversion.convert_gato_torch_config --weights gato_torch.pt    # explains why it cannot be converted

| gato-torch (`GatoConfig` / README keyword) | ours |
|---|---|
| `input_dim` (patch pixels, 16*16*3 = 768) | `num_channels = input_dim // img_patch_size**2` |
| `img_patch_size` | `patch_size` |
| `token_sequence_length`, `max_seq_len` | `max_position_embeddings` (`max_seq_len` wins when both are given) |
| `vocabulary_size` | `text_vocab_size`, `continuous_offset` |
| `actions_size` | `num_discrete_values` (discrete values share the text ids, as in the paper) |
| `continuous_values_size` | `num_continuous_bins`; `vocab_size` = text + bins + separator |
| `num_transformer_blocks` | `num_hidden_layers` |
| `num_attention_heads` | `num_attention_heads` |
| `layer_width` | `hidden_size` |
| `feedforward_hidden_size` | `intermediate_size` |
| `key_value_size` | `head_dim` |
| `dropout_rate` | `attention_dropout`, `hidden_dropout` |
| `num_group_norm_groups` | `patch_group_norm_groups` |
| `discretize_depth` | `patch_position_bins` |
| `local_position_encoding_size` | `local_position_size` |

Its weights cannot be converted: gato-torch 0.0.2's attention has no projection weights at all (its `FlashAttention`
has no parameters; queries, keys and values are the block input itself), so there are no q/k/v/o matrices to map,
and its patch ResNet's tensors have inconsistent shapes (the root convolution expects `input_dim` = 768 input
channels for 3-channel patches, and each residual unit's first convolution expects twice the channels the previous
layer produces), so its forward pass cannot run. There is no working function to carry over: convert the config,
then train (`python -m modeling_gato train --model-overrides ...`).
"""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

from ._common import atomic_directory, load_state_dict

GATO_TORCH_DEFAULTS = dict(
    input_dim=768, img_patch_size=16, token_sequence_length=1024, vocabulary_size=32000, actions_size=1024,
    continuous_values_size=1024, num_transformer_blocks=8, num_attention_heads=24, layer_width=768,
    feedforward_hidden_size=3072, key_value_size=32, dropout_rate=0.1, num_group_norm_groups=32, discretize_depth=128,
    local_position_encoding_size=512, max_seq_len=8192,
)


class GatoTorchWeightsError(ValueError):
    """gato-torch weights cannot be mapped onto a working model."""


WEIGHTS_MESSAGE = (
    "gato-torch weights cannot be converted to modeling_gato: (1) its attention has no projection weights at all "
    "(gato-torch 0.0.2's FlashAttention has no parameters: queries, keys and values are the block input itself), so "
    "there are no q/k/v/o matrices to map onto q_proj/k_proj/v_proj/o_proj; (2) its patch ResNet tensors have "
    "inconsistent shapes (the root convolution takes input_dim=768 input channels for 3-channel patches, and each "
    "residual unit's first convolution expects twice the channels the previous layer gives), so its forward pass "
    "cannot run and there is no working function to carry over. Convert its configuration instead "
    "(conversion.convert_gato_torch_config.convert_config, or `python -m conversion.convert_gato_torch_config`) and "
    "train."
)


def _as_dict(config: Any) -> dict[str, Any]:
    if isinstance(config, dict):
        return dict(config)
    if hasattr(config, "to_dict"):
        return dict(config.to_dict())
    return {k: v for k, v in vars(config).items() if not k.startswith("_")}


def convert_config(config: Any = None, **kwargs) -> tuple[Any, dict[str, str]]:
    """gato-torch's `GatoConfig` (object or dict) and/or its keyword arguments -> (our GatoConfig, name mapping used).

    Unknown names raise; names that have no counterpart are refused with the reason."""
    from modeling_gato import GatoConfig

    given = {**(_as_dict(config) if config is not None else {}), **kwargs}
    unknown = sorted(set(given) - set(GATO_TORCH_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown gato-torch config names {unknown}; known: {sorted(GATO_TORCH_DEFAULTS)}.")
    values = {**GATO_TORCH_DEFAULTS, **given}
    patch = values["img_patch_size"]
    if values["input_dim"] % (patch * patch):
        raise ValueError(f"input_dim={values['input_dim']} is not img_patch_size**2 * channels "
                         f"(img_patch_size={patch}): cannot tell the number of image channels.")
    if "max_seq_len" in given and "token_sequence_length" in given and given["max_seq_len"] != given["token_sequence_length"]:
        warnings.warn(f"max_seq_len={given['max_seq_len']} and token_sequence_length={given['token_sequence_length']} "
                      "differ: max_position_embeddings takes max_seq_len.", stacklevel=2)
    context = given.get("max_seq_len", values["token_sequence_length"])
    text, bins = values["vocabulary_size"], values["continuous_values_size"]
    ours = dict(
        num_channels=values["input_dim"] // (patch * patch),
        patch_size=patch,
        max_position_embeddings=context,
        text_vocab_size=text,
        continuous_offset=text,
        num_discrete_values=values["actions_size"],
        num_continuous_bins=bins,
        vocab_size=text + bins + 1,
        separator_token_id=text + bins,
        num_hidden_layers=values["num_transformer_blocks"],
        num_attention_heads=values["num_attention_heads"],
        hidden_size=values["layer_width"],
        intermediate_size=values["feedforward_hidden_size"],
        head_dim=values["key_value_size"],
        attention_dropout=values["dropout_rate"],
        hidden_dropout=values["dropout_rate"],
        patch_group_norm_groups=values["num_group_norm_groups"],
        patch_position_bins=values["discretize_depth"],
        local_position_size=values["local_position_encoding_size"],
    )
    mapping = {
        "input_dim": "num_channels", "img_patch_size": "patch_size",
        "token_sequence_length": "max_position_embeddings", "max_seq_len": "max_position_embeddings",
        "vocabulary_size": "text_vocab_size, continuous_offset, vocab_size", "actions_size": "num_discrete_values",
        "continuous_values_size": "num_continuous_bins, vocab_size", "num_transformer_blocks": "num_hidden_layers",
        "num_attention_heads": "num_attention_heads", "layer_width": "hidden_size",
        "feedforward_hidden_size": "intermediate_size", "key_value_size": "head_dim",
        "dropout_rate": "attention_dropout, hidden_dropout", "num_group_norm_groups": "patch_group_norm_groups",
        "discretize_depth": "patch_position_bins", "local_position_encoding_size": "local_position_size",
    }
    try:
        return GatoConfig(**ours), mapping
    except ValueError as error:
        raise ValueError(f"the gato-torch config does not make a valid modeling_gato config: {error}") from error


def convert_weights(path: str, allow_pickle: bool = False):
    """Always raises `GatoTorchWeightsError` (see `WEIGHTS_MESSAGE`), after reading the file safely to say what it holds.

    Pickled files (.pt/.bin) are refused unless `allow_pickle`; then read with `torch.load(weights_only=True)`."""
    state = load_state_dict(path, allow_pickle=allow_pickle)
    names = list(state)
    attention = [n for n in names if any(p in n for p in ("q_proj", "k_proj", "v_proj", "query", "key", "value", "qkv"))]
    details = [f"{path} holds {len(names)} tensors; attention projection tensors: {len(attention)}."]
    root = next((n for n in names if "root_conv.0.weight" in n), None)
    if root is not None:
        shape = tuple(state[root].shape)
        details.append(f"{root} has shape {shape}: {shape[1]} input channels for image patches.")
    raise GatoTorchWeightsError(WEIGHTS_MESSAGE + " " + " ".join(details))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conversion.convert_gato_torch_config",
        description="Convert a gato-torch configuration (its GatoConfig names / README keyword arguments) into a "
        "modeling_gato config.json. gato-torch weights cannot be converted (--weights explains why).",
    )
    parser.add_argument("overrides", nargs="*", help="gato-torch names as name=value, e.g. layer_width=768")
    parser.add_argument("--json", help="a JSON file of gato-torch config names")
    parser.add_argument("--output-dir", help="write config.json (our GatoConfig) here")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--weights", help="a gato-torch checkpoint: reports why it cannot be converted")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="read a pickled --weights file (torch.load(weights_only=True)); refused otherwise")
    args = parser.parse_args(argv)
    if args.weights:
        try:
            convert_weights(args.weights, allow_pickle=args.allow_pickle)
        except (GatoTorchWeightsError, ValueError) as error:
            print(f"error: {error}")
            return 2
    values: dict[str, Any] = {}
    if args.json:
        with open(args.json) as f:
            values.update(json.load(f))
    for item in args.overrides:
        name, _, raw = item.partition("=")
        try:
            values[name] = json.loads(raw)
        except json.JSONDecodeError:
            values[name] = raw
    config, mapping = convert_config(**values)
    for name in sorted(values or GATO_TORCH_DEFAULTS):
        print(f"{name} -> {mapping[name]}")
    if args.output_dir:
        with atomic_directory(args.output_dir, args.overwrite) as partial:
            config.save_pretrained(partial)
        print(f"wrote {args.output_dir}/config.json")
    else:
        print(config.to_json_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
