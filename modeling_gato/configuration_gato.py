"""Configuration of Gato (Reed et al., 2022, "A Generalist Agent", arXiv 2205.06175).

Only hyper-parameters live here. The three paper variants are `GatoConfig.small()` (79M),
`GatoConfig.baseline()` (364M) and `GatoConfig.large()` (1.18B), appendix C.1 of the paper.

This file is shipped as remote code: it imports transformers only.
"""

from __future__ import annotations

from transformers import PretrainedConfig

# Token-id layout (SPEC section 1 and 2): text [0, 32000), discrete values share [0, 1024),
# continuous values [32000, 33024), the separator '|' is the one id after them.
TEXT_VOCAB_SIZE = 32000
NUM_CONTINUOUS_BINS = 1024
SEPARATOR_TOKEN_ID = TEXT_VOCAB_SIZE + NUM_CONTINUOUS_BINS  # 33024
# "table": the paper's independent row per bin; "table+fourier": plus a shared value-aware term (ours).
CONTINUOUS_EMBEDDINGS = ("table", "table+fourier")


class GatoConfig(PretrainedConfig):
    r"""Hyper-parameters of [`GatoForCausalModeling`].

    Args:
        vocab_size (`int`, defaults to 33025): size of the shared token table: 32,000 text ids, 1,024
            continuous bins from `continuous_offset`, and the separator.
        hidden_size (`int`, defaults to 768): the layer width.
        num_hidden_layers (`int`, defaults to 8): transformer blocks.
        num_attention_heads (`int`, defaults to 24): attention heads.
        head_dim (`int`, defaults to 32): the key/value size of one head. `num_attention_heads * head_dim`
            must equal `hidden_size` (true of all three paper variants).
        intermediate_size (`int`, defaults to 3072): the feed-forward hidden size.
        max_position_embeddings (`int`, defaults to 1024): the context length in tokens.
        hidden_act (`str`, defaults to `"gelu"`): feed-forward activation.
        use_geglu (`bool`, defaults to `False`): GEGLU feed-forward (the appendix's activation) instead of the
            plain two-matrix GELU one. With GEGLU the gate and value projections have `intermediate_size // 2`
            units each, so that the hidden size splits in halves.
        layer_norm_eps (`float`): epsilon of the pre-norm LayerNorms.
        attention_bias (`bool`): biases on q/k/v/o and feed-forward projections.
        attention_dropout, hidden_dropout, embedding_dropout (`float`): dropout rates (0 by default).
        initializer_range (`float`): standard deviation of the normal initialisation.
        patch_size (`int`, defaults to 16): image patches are `patch_size` x `patch_size` pixels.
        num_channels (`int`, defaults to 3): image channels fed to the patch embedding.
        patch_embedding_channels (`int`, defaults to 32): channels of the single ResNet v2 block.
        patch_group_norm_groups (`int`, defaults to 32): GroupNorm groups in that block (the paper's 32).
        patch_residual_blocks (`int`, defaults to 1): residual units in the patch embedding (the paper: a single
            block). Units after the first are `extra_blocks.N`, so default checkpoints keep their names.
        patch_stem_kernel_size (`int`, defaults to 3), patch_stem_stride (`int`, defaults to 1): the stem convolution
            (TensorFlow "same" padding when it is not symmetric, e.g. gato-tf's 7x7 stride 2).
        patch_stem_activation (`bool`, defaults to `False`): GroupNorm + GELU after the stem (ResNet v2 roots, gato-tf).
        patch_downsample (`bool`, defaults to `False`): every residual unit halves the resolution and doubles the
            channels, with a GroupNorm + 1x1 stride-2 convolution shortcut (gato-tf's units).
        patch_group_norm_eps (`float`, defaults to 1e-5): GroupNorm epsilon in the patch embedding (Keras: 1e-3).
        patch_position_bins (`int`, defaults to 128): quantisation of the normalized patch row/column intervals.
        local_position_size (`int`, defaults to 512): entries of the local observation position table.
        action_position_embedding (`bool`, defaults to `False`): give every action token one shared learned
            encoding (one reading of the final paper); off reproduces the early paper (actions get none).
        use_absolute_position_embeddings (`bool`, defaults to `False`): add a learned global position table of
            `max_position_embeddings` entries (the paper specifies none).
        text_vocab_size (`int`, defaults to 32000): text ids are `[0, text_vocab_size)`.
        num_discrete_values (`int`, defaults to 1024): discrete values are ids `[0, num_discrete_values)`.
        continuous_offset (`int`, defaults to 32000): first id of the continuous bins.
        num_continuous_bins (`int`, defaults to 1024): uniform bins of the continuous range.
        continuous_embedding (`str`, defaults to `"table"`): how a continuous bin is embedded. `"table"` is the
            paper's: each of the `num_continuous_bins` ids has its own row of the shared token table, learned
            independently. `"table+fourier"` (ours, beyond the paper) adds to each bin's row a value-aware term
            shared by all bins: a learned linear map of Fourier features of the bin centre `y` in [-1, 1]
            (`y`, `sin(pi k y)`, `cos(pi k y)` for `k = 1..continuous_embedding_frequencies`). The same term is
            added to the bins' rows of the tied output layer, so what is learned for one value carries to its
            neighbours on both sides. `modeling_gato train` chooses it by measurement (see the README).
        continuous_embedding_frequencies (`int`, defaults to 9): frequencies of those Fourier features (2k + 1
            features; ignored with `"table"`).
        separator_token_id (`int`, defaults to 33024): the '|' between observation and action tokens.
        tie_word_embeddings (`bool`, defaults to `True`): share the token table with the output layer.
        use_cache (`bool`, defaults to `True`): return the key/value cache.
    """

    model_type = "gato"
    keys_to_ignore_at_inference = ["cache", "past_key_values"]

    def __init__(
        self,
        vocab_size: int = SEPARATOR_TOKEN_ID + 1,
        hidden_size: int = 768,
        num_hidden_layers: int = 8,
        num_attention_heads: int = 24,
        head_dim: int = 32,
        intermediate_size: int = 3072,
        max_position_embeddings: int = 1024,
        hidden_act: str = "gelu",
        use_geglu: bool = False,
        layer_norm_eps: float = 1e-5,
        attention_bias: bool = True,
        attention_dropout: float = 0.0,
        hidden_dropout: float = 0.0,
        embedding_dropout: float = 0.0,
        initializer_range: float = 0.02,
        patch_size: int = 16,
        num_channels: int = 3,
        patch_embedding_channels: int = 32,
        patch_group_norm_groups: int = 32,
        patch_residual_blocks: int = 1,
        patch_stem_kernel_size: int = 3,
        patch_stem_stride: int = 1,
        patch_stem_activation: bool = False,
        patch_downsample: bool = False,
        patch_group_norm_eps: float = 1e-5,
        patch_position_bins: int = 128,
        local_position_size: int = 512,
        action_position_embedding: bool = False,
        use_absolute_position_embeddings: bool = False,
        text_vocab_size: int = TEXT_VOCAB_SIZE,
        num_discrete_values: int = 1024,
        continuous_offset: int = TEXT_VOCAB_SIZE,
        num_continuous_bins: int = NUM_CONTINUOUS_BINS,
        continuous_embedding: str = "table",
        continuous_embedding_frequencies: int = 9,
        separator_token_id: int = SEPARATOR_TOKEN_ID,
        pad_token_id: int | None = 0,
        bos_token_id: int | None = 1,
        eos_token_id: int | None = 2,
        tie_word_embeddings: bool = True,
        use_cache: bool = True,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.head_dim = head_dim
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.hidden_act = hidden_act
        self.use_geglu = use_geglu
        self.layer_norm_eps = layer_norm_eps
        self.attention_bias = attention_bias
        self.attention_dropout = attention_dropout
        self.hidden_dropout = hidden_dropout
        self.embedding_dropout = embedding_dropout
        self.initializer_range = initializer_range
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.patch_embedding_channels = patch_embedding_channels
        self.patch_group_norm_groups = patch_group_norm_groups
        self.patch_residual_blocks = patch_residual_blocks
        self.patch_stem_kernel_size = patch_stem_kernel_size
        self.patch_stem_stride = patch_stem_stride
        self.patch_stem_activation = patch_stem_activation
        self.patch_downsample = patch_downsample
        self.patch_group_norm_eps = patch_group_norm_eps
        self.patch_position_bins = patch_position_bins
        self.local_position_size = local_position_size
        self.action_position_embedding = action_position_embedding
        self.use_absolute_position_embeddings = use_absolute_position_embeddings
        self.text_vocab_size = text_vocab_size
        self.num_discrete_values = num_discrete_values
        self.continuous_offset = continuous_offset
        self.num_continuous_bins = num_continuous_bins
        self.continuous_embedding = continuous_embedding
        self.continuous_embedding_frequencies = continuous_embedding_frequencies
        self.separator_token_id = separator_token_id
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.tie_word_embeddings = tie_word_embeddings
        self.use_cache = use_cache
        # Multi-head attention: as many key/value heads as query heads (read by cache and attention helpers).
        kwargs.pop("num_key_value_heads", None)
        self.num_key_value_heads = num_attention_heads
        super().__init__(**kwargs)
        self._check_consistency()

    # The paper's three variants (appendix C.1). Keyword arguments override any field.
    @classmethod
    def small(cls, **kwargs) -> GatoConfig:
        """The 79M variant: 8 blocks, 24 heads, width 768, FFN 3072, key/value size 32."""
        sizes = dict(num_hidden_layers=8, num_attention_heads=24, hidden_size=768, intermediate_size=3072, head_dim=32)
        return cls(**{**sizes, **kwargs})

    @classmethod
    def baseline(cls, **kwargs) -> GatoConfig:
        """The 364M variant: 12 blocks, 12 heads, width 1536, FFN 6144, key/value size 128."""
        sizes = dict(
            num_hidden_layers=12, num_attention_heads=12, hidden_size=1536, intermediate_size=6144, head_dim=128
        )
        return cls(**{**sizes, **kwargs})

    @classmethod
    def large(cls, **kwargs) -> GatoConfig:
        """The 1.18B variant: 24 blocks, 16 heads, width 2048, FFN 8192, key/value size 128."""
        sizes = dict(
            num_hidden_layers=24, num_attention_heads=16, hidden_size=2048, intermediate_size=8192, head_dim=128
        )
        return cls(**{**sizes, **kwargs})

    def _check_consistency(self) -> None:
        def fail(field: str, value, expected: str):
            raise ValueError(f"GatoConfig.{field}={value!r} is invalid: expected {expected}.")

        for field in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "head_dim",
            "intermediate_size",
            "max_position_embeddings",
            "patch_size",
            "num_channels",
            "patch_embedding_channels",
            "patch_group_norm_groups",
            "patch_residual_blocks",
            "patch_stem_kernel_size",
            "patch_stem_stride",
            "patch_position_bins",
            "local_position_size",
            "num_discrete_values",
            "num_continuous_bins",
        ):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                fail(field, value, "a positive integer")
        if self.num_attention_heads * self.head_dim != self.hidden_size:
            fail(
                "num_attention_heads * head_dim",
                self.num_attention_heads * self.head_dim,
                f"hidden_size={self.hidden_size} (the attention output is projected from heads x key/value size)",
            )
        if self.patch_embedding_channels % self.patch_group_norm_groups != 0:
            fail(
                "patch_embedding_channels",
                self.patch_embedding_channels,
                f"a multiple of patch_group_norm_groups={self.patch_group_norm_groups}",
            )
        if not self.patch_group_norm_eps > 0:
            fail("patch_group_norm_eps", self.patch_group_norm_eps, "a positive float")
        if self.use_geglu and self.intermediate_size % 2 != 0:
            fail("intermediate_size", self.intermediate_size, "an even number when use_geglu=True")
        if self.continuous_offset < 0:
            fail("continuous_offset", self.continuous_offset, "a non-negative integer")
        continuous_end = self.continuous_offset + self.num_continuous_bins
        if self.vocab_size < continuous_end:
            fail(
                "vocab_size",
                self.vocab_size,
                f">= continuous_offset + num_continuous_bins = {continuous_end} (the continuous range must fit)",
            )
        if self.num_discrete_values > self.vocab_size:
            fail("num_discrete_values", self.num_discrete_values, f"<= vocab_size={self.vocab_size}")
        if not 0 <= self.separator_token_id < self.vocab_size:
            fail("separator_token_id", self.separator_token_id, f"an id in [0, vocab_size={self.vocab_size})")
        if self.continuous_offset <= self.separator_token_id < continuous_end:
            fail("separator_token_id", self.separator_token_id, "an id outside the continuous range")
        for field in ("attention_dropout", "hidden_dropout", "embedding_dropout"):
            value = getattr(self, field)
            if not 0.0 <= value < 1.0:
                fail(field, value, "a probability in [0, 1)")
        if self.continuous_embedding not in CONTINUOUS_EMBEDDINGS:
            fail("continuous_embedding", self.continuous_embedding, f"one of {list(CONTINUOUS_EMBEDDINGS)}")
        frequencies = self.continuous_embedding_frequencies
        if not isinstance(frequencies, int) or isinstance(frequencies, bool) or frequencies < 0:
            fail("continuous_embedding_frequencies", frequencies, "a non-negative integer")
        if not self.use_geglu and self.hidden_act is None:
            fail("hidden_act", self.hidden_act, "an activation name such as 'gelu'")


__all__ = ["GatoConfig"]
