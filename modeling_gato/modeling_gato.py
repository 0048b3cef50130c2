"""Gato (Reed et al., 2022, "A Generalist Agent", arXiv 2205.06175) as a transformers causal LM.

Read top to bottom: the Gato-specific embeddings first (patch ResNet block, patch row/column
positions, local observation positions), then a plain pre-norm decoder (attention through
transformers' attention interface, KV cache through transformers' `Cache`), then the causal-LM head
with the masked loss (only text and action tokens are targets; the processor makes the mask).

Inputs beside `input_ids` (all `(batch, seq, ...)`, aligned with the tokens; made by `GatoProcessor`):
- `image_patches` `(batch, seq, 3, 16, 16)`: pixels of the patch slots (ignored elsewhere);
- `patch_mask` `(batch, seq)` bool: which slots are image patches;
- `patch_intervals` `(batch, seq, 4)`: normalized `[row_start, row_end, col_start, col_end]` of each patch;
- `local_positions` `(batch, seq)` long: index among the timestep's observation tokens, -1 where none;
- `action_mask` `(batch, seq)` bool: action tokens (used when `config.action_position_embedding`);
- `loss_mask` `(batch, seq)` bool: loss targets (turned into `labels` when `labels` is not given).

This file is shipped as remote code: it imports torch and transformers only.
"""

import functools
import importlib
import inspect
import os
from collections.abc import Callable
from dataclasses import fields
from typing import Any, Unpack

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import TransformersKwargs
from transformers.utils.deprecation import deprecate_kwarg

from .configuration_gato import GatoConfig

# transformers 5.24 renamed `past_key_values` to `cache`; support both spellings of the library.
_MASK_CACHE_ARG = "cache" if "cache" in inspect.signature(create_causal_mask).parameters else "past_key_values"
_OUTPUT_CACHE_FIELD = (
    "cache" if "cache" in {f.name for f in fields(CausalLMOutputWithPast)} else "past_key_values"
)
def _accept_past_key_values(function):
    """`cache` is the parameter; `past_key_values` still works. Since transformers 5.24 (which renamed it) the old
    name raises a FutureWarning; before, `generate()` itself passes `past_key_values`, so it is renamed silently."""
    if _OUTPUT_CACHE_FIELD == "cache":
        return deprecate_kwarg("past_key_values", version="6.0.0", new_name="cache")(function)

    @functools.wraps(function)
    def renamed(*args, **kwargs):
        if "past_key_values" in kwargs:
            value = kwargs.pop("past_key_values")
            if kwargs.get("cache") is None:
                kwargs["cache"] = value
        return function(*args, **kwargs)

    return renamed
GATO_TOKEN_INPUTS = ("image_patches", "patch_mask", "patch_intervals", "local_positions", "action_mask")


# --------------------------------------------------------------------------- Gato embeddings
class GatoPatchResidualUnit(nn.Module):
    """One pre-activation (ResNet v2) residual unit: `x + conv2(GELU(GN(conv1(GELU(GN(x))))))`.

    With `downsample`, the unit halves the resolution and doubles the channels (`conv1` to half the output
    channels, `conv2` with stride 2, TensorFlow "same" padding) and the shortcut is `conv_shortcut(norm_shortcut(x))`,
    a 1x1 stride-2 convolution: the units of OrigamiDream/gato (gato-tf), which `conversion/` maps.
    """

    def __init__(self, channels: int, groups: int, eps: float, downsample: bool = False):
        super().__init__()
        self.downsample = downsample
        out_channels = 2 * channels if downsample else channels
        inner = out_channels // 2 if downsample else channels
        self.norm1 = nn.GroupNorm(groups, channels, eps=eps)
        self.conv1 = nn.Conv2d(channels, inner, kernel_size=3, padding=1)
        self.norm2 = nn.GroupNorm(groups, inner, eps=eps)
        self.conv2 = nn.Conv2d(inner, out_channels, kernel_size=3, stride=2 if downsample else 1,
                               padding=0 if downsample else 1)
        if downsample:
            self.norm_shortcut = nn.GroupNorm(groups, channels, eps=eps)
            self.conv_shortcut = nn.Conv2d(channels, out_channels, kernel_size=1, stride=2, bias=False)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.conv_shortcut(self.norm_shortcut(x)) if self.downsample else x
        x = self.conv1(self.act(self.norm1(x)))
        x = self.act(self.norm2(x))
        x = self.conv2(_tf_same_pad(x, 3, 2) if self.downsample else x)
        return x + residual


def _tf_same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow "same" padding (asymmetric for even sizes with stride 2: the extra pixel goes bottom/right)."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads) if any(pads) else x


class GatoPatchEmbedding(nn.Module):
    """One image patch -> one vector: a single ResNet v2 block (paper appendix C.2).

    A 3x3 convolution lifts the pixels to `patch_embedding_channels`; the pre-activation residual block is
    `x + conv(GELU(GroupNorm(conv(GELU(GroupNorm(x))))))` with GroupNorm (32 groups) instead of BatchNorm and
    GELU instead of ReLU; the block's output is flattened and projected to the model width.

    `config.patch_residual_blocks` (default 1, the paper) adds units after the first (`extra_blocks.N`; the first
    keeps the names `norm1`, `conv1`, `norm2`, `conv2`). `patch_stem_kernel_size` / `patch_stem_stride` /
    `patch_stem_activation` (GroupNorm + GELU after the stem, `stem_norm`) and `patch_downsample` (every unit halves
    the resolution and doubles the channels) describe other published patch ResNets, e.g. gato-tf's.
    """

    def __init__(self, config: GatoConfig):
        super().__init__()
        channels, groups, p = config.patch_embedding_channels, config.patch_group_norm_groups, config.patch_size
        eps = getattr(config, "patch_group_norm_eps", 1e-5)
        blocks = getattr(config, "patch_residual_blocks", 1)
        self.downsample = getattr(config, "patch_downsample", False)
        self.stem_kernel = getattr(config, "patch_stem_kernel_size", 3)
        self.stem_stride = getattr(config, "patch_stem_stride", 1)
        self.patch_size = p
        self.num_channels = config.num_channels
        symmetric = self.stem_stride == 1 and self.stem_kernel % 2 == 1
        self.stem_same_pad = not symmetric
        self.stem = nn.Conv2d(config.num_channels, channels, kernel_size=self.stem_kernel, stride=self.stem_stride,
                              padding=self.stem_kernel // 2 if symmetric else 0)
        self.stem_norm = (
            nn.GroupNorm(groups, channels, eps=eps) if getattr(config, "patch_stem_activation", False) else None
        )
        size = -(-p // self.stem_stride)
        units = []
        for _ in range(blocks):
            units.append(GatoPatchResidualUnit(channels, groups, eps, self.downsample))
            if self.downsample:
                channels, size = 2 * channels, -(-size // 2)
        first = units[0]
        self.norm1, self.conv1, self.norm2, self.conv2 = first.norm1, first.conv1, first.norm2, first.conv2
        if self.downsample:
            self.norm_shortcut, self.conv_shortcut = first.norm_shortcut, first.conv_shortcut
        self.extra_blocks = nn.ModuleList(units[1:])
        self.act = nn.GELU()
        self.proj = nn.Linear(channels * size * size, config.hidden_size)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        # (num_patches, C, p, p) -> (num_patches, hidden)
        x = self.stem(_tf_same_pad(patches, self.stem_kernel, self.stem_stride) if self.stem_same_pad else patches)
        if self.stem_norm is not None:
            x = self.act(self.stem_norm(x))
        residual = self.conv_shortcut(self.norm_shortcut(x)) if self.downsample else x
        x = self.conv1(self.act(self.norm1(x)))
        x = self.act(self.norm2(x))
        x = self.conv2(_tf_same_pad(x, 3, 2) if self.downsample else x)
        x = x + residual
        for block in self.extra_blocks:
            x = block(x)
        return self.proj(x.flatten(1))


def patch_position_indices(intervals: torch.Tensor, num_bins: int, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices of the patch position tables (paper appendix C.3).

    Each normalized interval `[start, end)` is quantized to `[round(start * bins), round(end * bins))` (at least
    one bin wide). Training samples an index uniformly inside it (torch's global generator, so Trainer's RNG
    checkpointing makes it reproducible); evaluation takes the middle, `(lo + hi) // 2`.

    Args:
        intervals: `(..., 4)` as `[row_start, row_end, col_start, col_end]` in [0, 1].
    Returns:
        two long tensors of shape `(...)`.
    """
    quantized = torch.round(intervals.float().clamp(0.0, 1.0) * num_bins).long()
    lo = quantized[..., 0::2].clamp(max=num_bins - 1)  # (..., 2): row, col
    hi = torch.maximum(quantized[..., 1::2], lo + 1).clamp(max=num_bins)
    if training:
        index = lo + (torch.rand(lo.shape, device=lo.device) * (hi - lo)).long()
        index = torch.minimum(index, hi - 1)
    else:
        index = (lo + hi) // 2
    return index[..., 0], index[..., 1]


class GatoContinuousValueEmbedding(nn.Module):
    """The value-aware term of the continuous bins' rows (`config.continuous_embedding="table+fourier"`, ours).

    Bin `b`'s centre is `y_b = -1 + (2b + 1) / num_bins` in [-1, 1] (mu-law space for observations, the action's
    own scale for actions). Its features are `[y_b, sin(pi k y_b), cos(pi k y_b) for k = 1..K]` and its term is
    one shared linear map of them: `rows()[b] = W @ features(y_b)`, `W` of shape `(hidden, 2K + 1)`. Every bin
    shares `W`, so a gradient from one value moves its neighbours too. The term is added to the bins' rows of
    the token table on input and of the (tied) output layer on output; the table rows stay free, so the
    paper's per-bin capacity is kept.
    """

    def __init__(self, config: GatoConfig):
        super().__init__()
        self.num_bins = config.num_continuous_bins
        self.frequencies = config.continuous_embedding_frequencies
        self.proj = nn.Linear(2 * self.frequencies + 1, config.hidden_size, bias=False)

    def features(self, device: torch.device | None = None) -> torch.Tensor:
        """`(num_bins, 2K + 1)` Fourier features of the bin centres (computed, not stored: nothing to load)."""
        centres = (2 * torch.arange(self.num_bins, device=device, dtype=torch.float32) + 1) / self.num_bins - 1
        angles = torch.pi * centres[:, None] * torch.arange(1, self.frequencies + 1, device=device)[None, :]
        return torch.cat([centres[:, None], torch.sin(angles), torch.cos(angles)], dim=-1)

    def rows(self) -> torch.Tensor:
        """`(num_bins, hidden)`: the term added to each bin's table row."""
        weight = self.proj.weight
        return F.linear(self.features(weight.device).to(weight.dtype), weight)

    def forward(self, bins: torch.LongTensor) -> torch.Tensor:
        """`(...)` bin indices -> `(..., hidden)` terms. The constant features are gathered and then projected (not
        the projected rows gathered), so the gradient is a plain matmul: deterministic, unlike an indexed
        accumulation, which keeps a resumed run bit-identical to an uninterrupted one."""
        return self.proj(self.features(bins.device)[bins].to(self.proj.weight.dtype))


class GatoEmbeddings(nn.Module):
    """Token ids and patch pixels -> input vectors.

    Text, discrete, continuous and separator ids share one table (`embed_tokens`, tied with the output layer).
    Patch slots take the ResNet patch embedding plus learned row and column embeddings. Every observation
    token adds its local observation position embedding; action tokens add one shared embedding when
    `config.action_position_embedding`.
    """

    def __init__(self, config: GatoConfig):
        super().__init__()
        self.config = config
        # No padding_idx: id 0 is both '<pad>' and the discrete value 0.
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.patch_embedding = GatoPatchEmbedding(config)
        self.patch_row_embedding = nn.Embedding(config.patch_position_bins, config.hidden_size)
        self.patch_col_embedding = nn.Embedding(config.patch_position_bins, config.hidden_size)
        self.local_position_embedding = nn.Embedding(config.local_position_size, config.hidden_size)
        self.action_position_embedding = (
            nn.Embedding(1, config.hidden_size) if config.action_position_embedding else None
        )
        self.position_embedding = (
            nn.Embedding(config.max_position_embeddings, config.hidden_size)
            if config.use_absolute_position_embeddings
            else None
        )
        self.continuous_value_embedding = (
            GatoContinuousValueEmbedding(config) if config.continuous_embedding == "table+fourier" else None
        )
        self.dropout = nn.Dropout(config.embedding_dropout)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        image_patches: torch.Tensor | None = None,
        patch_mask: torch.Tensor | None = None,
        patch_intervals: torch.Tensor | None = None,
        local_positions: torch.LongTensor | None = None,
        action_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
    ) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)  # (batch, seq, hidden)
            if self.continuous_value_embedding is not None:
                # Continuous ids take their bin's shared value-aware term on top of their table row.
                bins = input_ids - self.config.continuous_offset
                is_bin = (bins >= 0) & (bins < self.config.num_continuous_bins)
                value = self.continuous_value_embedding(bins.clamp(0, self.config.num_continuous_bins - 1))
                inputs_embeds = inputs_embeds + value.to(inputs_embeds.dtype) * is_bin.unsqueeze(-1).to(inputs_embeds.dtype)
        embeds = inputs_embeds
        batch_seq = embeds.shape[:2]

        if patch_mask is not None and image_patches is not None:
            _check_shape("patch_mask", patch_mask, batch_seq)
            _check_shape("image_patches", image_patches, batch_seq)
            patch_mask = patch_mask.bool()
            patches = image_patches[patch_mask].to(embeds.dtype)  # (num_patches, C, p, p)
            patch_embeds = self.embed_patches(patches)  # (num_patches, hidden)
            if patch_intervals is None:
                raise ValueError("patch_intervals is required with image_patches: (batch, seq, 4) normalized intervals.")
            _check_shape("patch_intervals", patch_intervals, batch_seq)
            rows, cols = patch_position_indices(
                patch_intervals[patch_mask], self.config.patch_position_bins, self.training
            )
            patch_embeds = patch_embeds + self.patch_row_embedding(rows) + self.patch_col_embedding(cols)
            # Patch slots take the patch embedding instead of their (placeholder) token embedding.
            embeds = embeds.masked_scatter(patch_mask.unsqueeze(-1), patch_embeds.to(embeds.dtype))
        elif patch_mask is not None and image_patches is None and not torch.compiler.is_compiling():
            if patch_mask.any():
                raise ValueError("patch_mask marks image patch slots but image_patches was not given.")

        if local_positions is not None:
            _check_shape("local_positions", local_positions, batch_seq)
            if not torch.compiler.is_compiling() and local_positions.numel():
                largest = int(local_positions.max())
                if largest >= self.config.local_position_size:
                    raise ValueError(
                        f"local_positions: got {largest}, expected values < local_position_size="
                        f"{self.config.local_position_size} (or -1 for tokens without a local position)."
                    )
            has_position = (local_positions >= 0).unsqueeze(-1)
            local = self.local_position_embedding(local_positions.clamp(min=0))
            embeds = embeds + local * has_position.to(embeds.dtype)

        if self.action_position_embedding is not None and action_mask is not None:
            _check_shape("action_mask", action_mask, batch_seq)
            embeds = embeds + self.action_position_embedding.weight[0] * action_mask.unsqueeze(-1).to(embeds.dtype)

        if self.position_embedding is not None:
            embeds = embeds + self.position_embedding(position_ids.clamp(0, self.config.max_position_embeddings - 1))
        return self.dropout(embeds)

    def embed_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """`(num_patches, C, p, p)` -> `(num_patches, hidden)`: the patch embedding of each distinct patch, once.

        The ResNet block sees one patch at a time (GroupNorm normalizes each patch alone), so a patch's embedding
        depends on its pixels only, and repeated patches can share one computation; their gradients add up in the
        gather's backward, as they would have in the convolutions'. BabyAI views repeat most of theirs (walls, floor,
        unseen cells: 83% of the patches in the demo's training batches are repeats); the convolutions were a quarter of
        a training step on a CPU before.
        """
        if patches.shape[0] < 2 or torch.compiler.is_compiling():
            return self.patch_embedding(patches)
        distinct, inverse = torch.unique(patches.flatten(1), dim=0, return_inverse=True)
        if distinct.shape[0] == patches.shape[0]:
            return self.patch_embedding(patches)
        return self.patch_embedding(distinct.view(-1, *patches.shape[1:]))[inverse]


def _check_shape(name: str, tensor: torch.Tensor, batch_seq: torch.Size) -> None:
    if tuple(tensor.shape[:2]) != tuple(batch_seq):
        raise ValueError(
            f"{name}: expected shape (batch, seq, ...) = {tuple(batch_seq)} like input_ids, got {tuple(tensor.shape)}."
        )


# --------------------------------------------------------------------------- decoder
def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    # query/key/value: (batch, heads, seq, head_dim)
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            weights = weights.masked_fill(~attention_mask, torch.finfo(weights.dtype).min)
        else:
            weights = weights + attention_mask
    weights = F.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()  # (batch, seq, heads, head_dim)
    return output, weights


# Band widths for packed rows: a row whose every token sees only tokens of its own and the previous `width`-token chunk
# attends over 2 * width keys instead of the whole sequence; the smallest width that holds the row is used.
_BAND_WIDTHS = (32, 64, 128, 256)


def attention_bands(mask: torch.Tensor | None, seq: int) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """Which rows of a 4-D boolean mask can attend within bands: `(band_rows, full_rows, width)`, or None.

    Packed rows (the sequence builder's short-context samples: independent windows of a few dozen tokens, each seeing
    only itself) make a block-diagonal mask. Full attention over such a row computes `seq x seq` scores to keep a few
    percent of them. A row qualifies for width `w` (a divisor of `seq`, at most `seq / 4`) when every query in chunk
    `i` (tokens `[i w, (i + 1) w)`) sees at least one key and only keys in chunks `i - 1` and `i`; its attention is
    then exact over those `2 w` keys. Rows that never qualify (text, full-context episodes) keep full attention.
    Only for a mask over this call's tokens alone (no cached past) and without attention weights to return.
    """
    if (not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.dim() != 4 or mask.shape[1] != 1
            or tuple(mask.shape[-2:]) != (seq, seq) or torch.compiler.is_compiling()):
        return None
    sees = mask[:, 0].to(torch.uint8)  # (batch, query, key)
    has_key = sees.amax(-1).bool()
    first = sees.argmax(-1)  # first key each query sees
    last = seq - 1 - sees.flip(-1).argmax(-1)  # last one
    positions = torch.arange(seq, device=mask.device)
    width_of_row = torch.zeros(mask.shape[0], dtype=torch.long, device=mask.device)
    for width in reversed(_BAND_WIDTHS):  # the smallest width that fits wins
        if seq % width or 4 * width > seq:
            continue
        start = positions // width * width
        fits = (has_key & (first >= start - width) & (last < start + width)).all(-1)
        width_of_row = torch.where(fits, width, width_of_row)
    banded = width_of_row > 0
    if not bool(banded.any()):
        return None
    return banded.nonzero()[:, 0], (~banded).nonzero()[:, 0], int(width_of_row.max())


def banded_attention(interface: Callable, module: nn.Module, query: torch.Tensor, key: torch.Tensor,
                     value: torch.Tensor, mask: torch.Tensor, bands: tuple[torch.Tensor, torch.Tensor, int], **kwargs):
    """The attention of `interface` over `(batch, heads, seq, head_dim)` inputs and a 4-D boolean `mask`, with the rows
    `attention_bands` found computed chunk by chunk: chunk `i`'s queries against the keys of chunks `i - 1` and `i`
    (the mask's two blocks; the first chunk's missing predecessor is masked out). Equal to the full computation:
    every key left out is one the mask hides. Returns `(batch, seq, heads, head_dim)` like the interface, no weights."""
    band_rows, full_rows, width = bands
    batch, heads, seq, dim = query.shape
    rows, chunks = band_rows.numel(), seq // width

    def split(x: torch.Tensor) -> torch.Tensor:  # (rows, heads, seq, dim) -> (rows, heads, chunks, width, dim)
        return x[band_rows].reshape(rows, heads, chunks, width, dim)

    def with_previous(x: torch.Tensor) -> torch.Tensor:  # -> (rows * chunks, heads, 2 * width, dim)
        previous = F.pad(x, (0, 0, 0, 0, 1, 0))[:, :, :-1]
        return torch.cat([previous, x], dim=3).transpose(1, 2).reshape(rows * chunks, heads, 2 * width, dim)

    blocks = mask[band_rows, 0].view(rows, chunks, width, chunks, width)
    own = torch.diagonal(blocks, dim1=1, dim2=3).permute(0, 3, 1, 2)  # (rows, chunks, width, width)
    previous = torch.diagonal(blocks, offset=-1, dim1=1, dim2=3).permute(0, 3, 1, 2)  # chunk i + 1's view of i
    previous = F.pad(previous, (0, 0, 0, 0, 1, 0))  # the first chunk has none
    band_mask = torch.cat([previous, own], dim=-1).reshape(rows * chunks, 1, width, 2 * width)
    band_query = split(query).transpose(1, 2).reshape(rows * chunks, heads, width, dim)
    output, _ = interface(module, band_query, with_previous(split(key)), with_previous(split(value)), band_mask,
                          **kwargs)
    output = output.reshape(rows, seq, heads, dim)
    if full_rows.numel() == 0:
        return output
    full, _ = interface(module, query[full_rows], key[full_rows], value[full_rows], mask[full_rows], **kwargs)
    combined = output.new_zeros(batch, seq, heads, dim).index_copy(0, band_rows, output)
    return combined.index_copy(0, full_rows, full.to(output.dtype))


class GatoAttention(nn.Module):
    """Causal multi-head self-attention; the kernel comes from `config._attn_implementation` (sdpa, eager, ...)."""

    def __init__(self, config: GatoConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.num_key_value_groups = 1
        self.scaling = self.head_dim**-0.5
        self.is_causal = True
        inner = self.num_heads * self.head_dim
        self.q_proj = nn.Linear(config.hidden_size, inner, bias=config.attention_bias)
        self.k_proj = nn.Linear(config.hidden_size, inner, bias=config.attention_bias)
        self.v_proj = nn.Linear(config.hidden_size, inner, bias=config.attention_bias)
        self.o_proj = nn.Linear(inner, config.hidden_size, bias=config.attention_bias)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        bands: tuple[torch.Tensor, torch.Tensor, int] | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, seq, _ = hidden_states.shape
        shape = (batch, seq, self.num_heads, self.head_dim)
        query = self.q_proj(hidden_states).view(shape).transpose(1, 2)  # (batch, heads, seq, head_dim)
        key = self.k_proj(hidden_states).view(shape).transpose(1, 2)
        value = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)  # (batch, heads, past + seq, head_dim)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        dropout = self.config.attention_dropout if self.training else 0.0
        if bands is not None:
            output, weights = banded_attention(attention_interface, self, query, key, value, attention_mask, bands,
                                               dropout=dropout, scaling=self.scaling, **kwargs), None
        else:
            output, weights = attention_interface(
                self, query, key, value, attention_mask, dropout=dropout, scaling=self.scaling, **kwargs
            )
        output = output.reshape(batch, seq, -1).contiguous()
        return self.o_proj(output), weights


class GatoMLP(nn.Module):
    """Feed-forward block: `fc_out(act(fc_in(x)))`, or GEGLU `down(gelu(gate(x)) * up(x))` with half-size halves."""

    def __init__(self, config: GatoConfig):
        super().__init__()
        self.use_geglu = config.use_geglu
        if config.use_geglu:
            half = config.intermediate_size // 2
            self.gate_proj = nn.Linear(config.hidden_size, half, bias=config.attention_bias)
            self.up_proj = nn.Linear(config.hidden_size, half, bias=config.attention_bias)
            self.down_proj = nn.Linear(half, config.hidden_size, bias=config.attention_bias)
            self.act = ACT2FN["gelu"]
        else:
            self.fc_in = nn.Linear(config.hidden_size, config.intermediate_size, bias=config.attention_bias)
            self.fc_out = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.attention_bias)
            self.act = ACT2FN[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_geglu:
            return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))
        return self.fc_out(self.act(self.fc_in(x)))


class GatoDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm block: `x + attn(LN(x))`, then `x + mlp(LN(x))`."""

    def __init__(self, config: GatoConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attn = GatoAttention(config, layer_idx)
        self.post_attention_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = GatoMLP(config)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        bands: tuple[torch.Tensor, torch.Tensor, int] | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attn_out, attn_weights = self.self_attn(
            self.input_layernorm(hidden_states), attention_mask, cache, bands=bands, **kwargs
        )
        hidden_states = hidden_states + self.dropout(attn_out)
        hidden_states = hidden_states + self.dropout(self.mlp(self.post_attention_layernorm(hidden_states)))
        return hidden_states, attn_weights


# --------------------------------------------------------------------------- pretrained base
class GatoPreTrainedModel(PreTrainedModel):
    config_class = GatoConfig
    config: GatoConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["GatoDecoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = False
    _supports_attention_backend = True
    _can_compile_fullgraph = False

    def _init_weights(self, module: nn.Module) -> None:
        # Linear, Conv2d, Embedding (normal, std=initializer_range), LayerNorm and GroupNorm (ones/zeros):
        # every Gato parameter lives in one of those, so the library's initialisation covers them all.
        super()._init_weights(module)


def _pop_output_flags(config: GatoConfig, kwargs: dict[str, Any]) -> tuple[bool, bool, bool]:
    output_attentions = kwargs.pop("output_attentions", None)
    output_hidden_states = kwargs.pop("output_hidden_states", None)
    return_dict = kwargs.pop("return_dict", None)
    if output_attentions is None:
        output_attentions = bool(getattr(config, "output_attentions", False))
    if output_hidden_states is None:
        output_hidden_states = bool(getattr(config, "output_hidden_states", False))
    if return_dict is None:
        return_dict = getattr(config, "return_dict", True)
        return_dict = True if return_dict is None else bool(return_dict)
    return output_attentions, output_hidden_states, return_dict


def _masked_labels(labels: torch.Tensor, loss_mask: torch.Tensor | None, attention_mask: torch.Tensor | None):
    """-100 wherever the loss mask or the attention mask says there is no target."""
    if loss_mask is not None:
        _check_shape("loss_mask", loss_mask, labels.shape)
        labels = labels.masked_fill(~loss_mask.bool(), -100)
    if attention_mask is not None and attention_mask.dim() == 2 and attention_mask.shape == labels.shape:
        labels = labels.masked_fill(attention_mask == 0, -100)
    return labels


def _with_cache(output_class: type, cache: Cache | None, **values: Any) -> Any:
    return output_class(**values, **{_OUTPUT_CACHE_FIELD: cache})


class GatoModel(GatoPreTrainedModel):
    """The decoder without the output layer: `(batch, seq)` tokens -> `(batch, seq, hidden)` states."""

    def __init__(self, config: GatoConfig):
        super().__init__(config)
        self.embeddings = GatoEmbeddings(config)
        self.layers = nn.ModuleList([GatoDecoderLayer(config, i) for i in range(config.num_hidden_layers)])
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    @property
    def embed_tokens(self) -> nn.Embedding:
        return self.embeddings.embed_tokens

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.embed_tokens = value

    @_accept_past_key_values
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        position_ids: torch.LongTensor | None = None,
        image_patches: torch.Tensor | None = None,
        patch_mask: torch.Tensor | None = None,
        patch_intervals: torch.Tensor | None = None,
        local_positions: torch.LongTensor | None = None,
        action_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPast | tuple:
        output_attentions, output_hidden_states, return_dict = _pop_output_flags(self.config, kwargs)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids (batch, seq) and inputs_embeds (batch, seq, hidden).")
        reference = input_ids if input_ids is not None else inputs_embeds
        if reference.dim() != (2 if input_ids is not None else 3):
            name = "input_ids" if input_ids is not None else "inputs_embeds"
            raise ValueError(f"{name}: expected (batch, seq{'' if input_ids is not None else ', hidden'}), got {tuple(reference.shape)}.")
        batch, seq = reference.shape[:2]
        if attention_mask is not None and attention_mask.dim() == 2 and attention_mask.shape[0] != batch:
            raise ValueError(
                f"attention_mask: batch size {attention_mask.shape[0]} does not match input_ids' batch size {batch}."
            )
        use_cache = use_cache if use_cache is not None else getattr(self.config, "use_cache", True)
        if self.gradient_checkpointing and self.training:
            use_cache = False
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        past = cache.get_seq_length() if cache is not None else 0
        if past + seq > self.config.max_position_embeddings and not torch.compiler.is_compiling():
            raise ValueError(
                f"sequence of {past + seq} tokens ({past} cached + {seq} new) is longer than the context "
                f"max_position_embeddings={self.config.max_position_embeddings}."
            )
        if input_ids is not None and not torch.compiler.is_compiling() and input_ids.numel():
            low, high = int(input_ids.min()), int(input_ids.max())
            if low < 0 or high >= self.config.vocab_size:
                raise ValueError(f"input_ids: expected ids in [0, vocab_size={self.config.vocab_size}), got [{low}, {high}].")

        if position_ids is None and self.embeddings.position_embedding is not None:
            if attention_mask is not None and attention_mask.dim() == 2:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -seq:]
            else:
                position_ids = torch.arange(past, past + seq, device=reference.device).unsqueeze(0)

        hidden_states = self.embeddings(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,
            image_patches=image_patches,
            patch_mask=patch_mask,
            patch_intervals=patch_intervals,
            local_positions=local_positions,
            action_mask=action_mask,
            position_ids=position_ids,
        )
        mask = create_causal_mask(
            config=self.config,
            inputs_embeds=hidden_states,
            attention_mask=attention_mask,
            position_ids=torch.arange(past, past + seq, device=hidden_states.device).unsqueeze(0),
            **{_MASK_CACHE_ARG: cache},
        )

        # Packed rows of short windows attend within bands (exact, a fraction of the work): `attention_bands`.
        bands = None if output_attentions or past else attention_bands(mask, seq)
        all_hidden_states = () if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer in self.layers:
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            hidden_states, weights = layer(hidden_states, mask, cache, bands=bands, **kwargs)
            if output_attentions:
                all_attentions += (weights,)
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)

        next_cache = cache if use_cache else None
        if not return_dict:
            return tuple(v for v in (hidden_states, next_cache, all_hidden_states, all_attentions) if v is not None)
        return _with_cache(
            BaseModelOutputWithPast,
            next_cache,
            last_hidden_state=hidden_states,
            hidden_states=all_hidden_states,
            attentions=all_attentions,
        )


def _sibling_module(name: str):
    """The module `name` (dotted, e.g. "hub.cards") of this file's package (the installed `modeling_gato`, or the
    folder a saved copy was loaded from) if that package has it, else None. Imported by name at run time, not with a
    `from .` import, so that transformers does not count them among the files the model itself needs (the pipelines
    ship beside it through `save_pretrained`; the cards stay in the installed package's `hub/`)."""
    path = os.path.join(os.path.dirname(__file__), *name.split(".")) + ".py"
    if not __package__ or not os.path.isfile(path):
        return None
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ImportError:
        return None


# --------------------------------------------------------------------------- causal LM head
class GatoForCausalModeling(GatoPreTrainedModel, GenerationMixin):
    """Gato: the decoder plus the output layer (tied with the token table) and the masked next-token loss.

    `model(input_ids=...)` alone is a text forward pass, so `generate()` works for text prompts like any causal
    LM. With the processor's outputs (`model(**processor(episodes=...))`) it embeds image patches and positions;
    `labels` (or `loss_mask`) gives the loss on text and action tokens only.
    """

    _tied_weights_keys = {"lm_head.weight": "model.embeddings.embed_tokens.weight"}

    def __init__(self, config: GatoConfig):
        super().__init__(config)
        self.model = GatoModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        # The class name does not end in "ForCausalLM": name the loss so Trainer scales it right.
        self.loss_type = "ForCausalLM"
        # `custom_pipelines` (config.json) tells `pipeline(task, model=<directory>)` to load the directory's copy of the
        # pipeline code; `save_pretrained` writes it afresh. A model in memory keeps none, so that
        # `pipeline(task, model=model, processor=processor)` uses the registered pipeline classes.
        if getattr(config, "custom_pipelines", None) is not None:
            del config.custom_pipelines
        self.post_init()

    def save_pretrained(self, save_directory, *args, **kwargs):
        # `register_for_auto_class` records one auto class; AutoModel needs its own `auto_map` entry too.
        if self._auto_class is not None:
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            auto_map["AutoModel"] = f"{type(self).__module__.split('.')[-1]}.{type(self).__name__}"
            self.config.auto_map = auto_map
        # The pipelines travel with the model: their tasks in config.json (`custom_pipelines`) and their code (the
        # sibling `pipelines.py`, with the acting code it imports) in the folder.
        pipelines = _sibling_module("pipelines") if self._auto_class is not None else None
        if pipelines is None:
            return super().save_pretrained(save_directory, *args, **kwargs)
        self.config.custom_pipelines = pipelines.custom_pipelines()
        try:
            result = super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            del self.config.custom_pipelines
        if kwargs.get("is_main_process", True):
            pipelines.save_pipeline_code(save_directory)
        return result

    def _upload_modified_files(self, working_dir, repo_id, *args, **kwargs):
        # `push_to_hub` saves into `working_dir`, puts transformers' card there (the Hub repository's current card, or
        # a generic template), then calls this to upload: where the installed package is present, its `cards` module
        # makes the project's card the one uploaded (the card of the directory the model was loaded from, kept with
        # its model-index; see `modeling_gato.hub.cards.card_for_push`).
        cards = _sibling_module("hub.cards")
        if cards is not None:
            cards.card_for_push(working_dir, repo_id, source=getattr(self, "name_or_path", None))
        return super()._upload_modified_files(working_dir, repo_id, *args, **kwargs)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embeddings.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embeddings.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def output_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The output layer: `(..., hidden)` -> `(..., vocab)`. With `continuous_embedding="table+fourier"` the
        continuous bins' logits also take the shared value-aware term (the input side's, tied)."""
        logits = self.lm_head(hidden_states)
        values = self.model.embeddings.continuous_value_embedding
        if values is not None:
            start = self.config.continuous_offset
            end = start + self.config.num_continuous_bins
            logits[..., start:end] += F.linear(hidden_states, values.rows().to(hidden_states.dtype))
        return logits

    def output_rows(self, low: int, high: int) -> torch.Tensor:
        """`(high - low, hidden)`: the output layer's rows for ids `[low, high)`, value-aware term included, so
        `hidden @ output_rows(low, high).T == output_logits(hidden)[..., low:high]` at a fraction of the cost."""
        rows = self.lm_head.weight[low:high]
        values = self.model.embeddings.continuous_value_embedding
        start, bins = self.config.continuous_offset, self.config.num_continuous_bins
        first, last = max(low, start), min(high, start + bins)
        if values is None or first >= last:
            return rows
        term = torch.zeros_like(rows)
        term[first - low:last - low] = values.rows()[first - start:last - start].to(rows.dtype)
        return rows + term

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    @_accept_past_key_values
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        position_ids: torch.LongTensor | None = None,
        image_patches: torch.Tensor | None = None,
        patch_mask: torch.Tensor | None = None,
        patch_intervals: torch.Tensor | None = None,
        local_positions: torch.LongTensor | None = None,
        action_mask: torch.Tensor | None = None,
        loss_mask: torch.Tensor | None = None,
        target_logits_only: bool = False,
        **kwargs: Unpack[TransformersKwargs],
    ) -> CausalLMOutputWithPast | tuple:
        r"""
        labels (`(batch, seq)`, *optional*): unshifted target ids, -100 where there is no target (the shift happens
            in the loss). When `loss_mask` is also given, positions outside it are ignored too.
        loss_mask (`(batch, seq)` bool, *optional*): targets (text and action tokens). Without `labels`, the loss
            uses `input_ids` at these positions.
        target_logits_only (`bool`, defaults to `False`): with labels, apply the output layer only at the positions
            that predict a target (the same loss, far fewer FLOPs when few tokens are targets, as in episodes); `logits`
            is then `(1, num_targets, vocab)`. Training speed-up used by `modeling_gato train`.
        """
        output_attentions, output_hidden_states, return_dict = _pop_output_flags(self.config, kwargs)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            position_ids=position_ids,
            image_patches=image_patches,
            patch_mask=patch_mask,
            patch_intervals=patch_intervals,
            local_positions=local_positions,
            action_mask=action_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            **{k: v for k, v in kwargs.items() if k not in ("num_items_in_batch", "shift_labels", "ignore_index")},
        )
        hidden_states = outputs.last_hidden_state
        if labels is None and loss_mask is not None and input_ids is not None:
            labels = input_ids
        if target_logits_only and labels is not None:
            return self._target_only_loss(hidden_states, labels, loss_mask, attention_mask, outputs, return_dict, kwargs)
        if isinstance(logits_to_keep, int):
            kept = hidden_states[:, -logits_to_keep:, :] if logits_to_keep > 0 else hidden_states
        else:
            kept = hidden_states[:, logits_to_keep, :]
        logits = self.output_logits(kept)

        loss = None
        if labels is not None:
            labels = _masked_labels(labels, loss_mask, attention_mask)
            loss_kwargs = {k: v for k, v in kwargs.items() if k in ("num_items_in_batch", "shift_labels", "ignore_index")}
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **loss_kwargs)

        cache_out = getattr(outputs, _OUTPUT_CACHE_FIELD)
        if not return_dict:
            values = (loss, logits, cache_out, outputs.hidden_states, outputs.attentions)
            return tuple(v for v in values if v is not None)
        return _with_cache(
            CausalLMOutputWithPast,
            cache_out,
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    def _target_only_loss(self, hidden_states, labels, loss_mask, attention_mask, outputs, return_dict, kwargs):
        """The causal-LM loss with the output layer applied only where a target is predicted."""
        labels = _masked_labels(labels, loss_mask, attention_mask)
        shift_labels = kwargs.get("shift_labels")
        if shift_labels is None:
            shift_labels = F.pad(labels, (0, 1), value=-100)[:, 1:]  # position t predicts label t + 1
        keep = shift_labels != -100  # (batch, seq)
        logits = self.output_logits(hidden_states[keep]).unsqueeze(0)  # (1, num_targets, vocab)
        loss = self.loss_function(
            logits=logits,
            labels=None,
            shift_labels=shift_labels[keep].unsqueeze(0),
            vocab_size=self.config.vocab_size,
            num_items_in_batch=kwargs.get("num_items_in_batch"),
        )
        cache_out = getattr(outputs, _OUTPUT_CACHE_FIELD)
        if not return_dict:
            return tuple(v for v in (loss, logits, cache_out) if v is not None)
        return _with_cache(CausalLMOutputWithPast, cache_out, loss=loss, logits=logits,
                           hidden_states=outputs.hidden_states, attentions=outputs.attentions)

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        *args,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs,
    ) -> dict[str, Any]:
        """The library's preparation, plus Gato's per-token inputs cut to the tokens fed in this step.

        Generated tokens are text/action tokens: no patch, no local position. `loss_mask` is not used when generating.
        `inputs_embeds` is a named parameter because `generate(inputs_embeds=...)` checks this signature for it.
        """
        gato_inputs = {k: kwargs.pop(k) for k in GATO_TOKEN_INPUTS if kwargs.get(k) is not None}
        kwargs.pop("loss_mask", None)
        model_inputs = super().prepare_inputs_for_generation(input_ids, *args, inputs_embeds=inputs_embeds, **kwargs)
        if not gato_inputs:
            return model_inputs
        current = model_inputs.get("input_ids")
        if current is None:
            current = model_inputs["inputs_embeds"]
        cache = model_inputs.get("cache", model_inputs.get("past_key_values"))
        past = cache.get_seq_length() if isinstance(cache, Cache) else 0
        end = past + current.shape[1]
        prompt_length = max(v.shape[1] for v in gato_inputs.values())
        for name, value in gato_inputs.items():
            if name in ("image_patches", "patch_intervals", "patch_mask") and past >= prompt_length:
                continue  # every token fed from here on was generated: no patches
            if value.shape[1] < end:
                fill = -1 if name == "local_positions" else 0
                pad = value.new_full((value.shape[0], end - value.shape[1], *value.shape[2:]), fill)
                value = torch.cat([value, pad], dim=1)
            model_inputs[name] = value[:, past:end]
        return model_inputs


__all__ = ["GatoForCausalModeling", "GatoModel", "GatoPreTrainedModel"]
