"""Parameter counts of the paper's three variants, next to the paper's figures (appendix C.1)."""

from __future__ import annotations

import torch

from ..configuration_gato import GatoConfig
from ..modeling_gato import GatoForCausalModeling

PAPER_PARAMETERS = {"small": 79e6, "baseline": 364e6, "large": 1.18e9}


def count_parameters(config: GatoConfig) -> dict[str, int]:
    """Unique parameters of a model built on the meta device (no memory), split by part. Tied weights count once."""
    with torch.device("meta"):
        model = GatoForCausalModeling(config)
    seen, parts = set(), {"token_table": 0, "patch_embedding": 0, "positions": 0, "transformer": 0, "other": 0}
    for name, param in model.named_parameters(remove_duplicate=True):
        if id(param) in seen:
            continue
        seen.add(id(param))
        if "embed_tokens" in name or name == "lm_head.weight":
            parts["token_table"] += param.numel()
        elif "patch_embedding" in name:
            parts["patch_embedding"] += param.numel()
        elif "position_embedding" in name or "patch_row" in name or "patch_col" in name:
            parts["positions"] += param.numel()
        elif ".layers." in name or name.startswith("model.norm"):
            parts["transformer"] += param.numel()
        else:
            parts["other"] += param.numel()
    parts["total"] = sum(parts.values())
    return parts


def variant_table(**overrides) -> str:
    """A markdown table: our count for each variant next to the paper's."""
    lines = [
        "| variant | layers | heads | width | FFN | key/value | paper | ours (total) | transformer blocks | token table | patch ResNet | position tables |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("small", "baseline", "large"):
        config = getattr(GatoConfig, name)(**overrides)
        parts = count_parameters(config)
        lines.append(
            f"| {name} | {config.num_hidden_layers} | {config.num_attention_heads} | {config.hidden_size} | "
            f"{config.intermediate_size} | {config.head_dim} | {PAPER_PARAMETERS[name] / 1e6:,.0f}M | "
            f"{parts['total'] / 1e6:,.1f}M | {parts['transformer'] / 1e6:,.1f}M | {parts['token_table'] / 1e6:,.1f}M | "
            f"{parts['patch_embedding'] / 1e6:,.1f}M | {parts['positions'] / 1e6:,.2f}M |"
        )
    return "\n".join(lines)
