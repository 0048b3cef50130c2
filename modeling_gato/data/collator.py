"""A data collator that `transformers.Trainer` can use on raw `datasets` rows of any kind."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers.feature_extraction_utils import BatchFeature

from ..processing_gato import GatoProcessor

TOKENIZED_KEYS = ("input_ids", "patch_mask", "local_positions", "action_mask", "loss_mask")


@dataclass
class GatoDataCollator:
    """Tokenizes and pads a list of rows into a training batch with `labels` (-100 off the loss mask).

    Rows are episodes, text, caption or VQA rows (see `GatoProcessor.tokenize_sample`), or samples that are
    already tokenized (they carry `input_ids`, `patch_mask`, `local_positions`, `action_mask`, `loss_mask`,
    `patches`, `patch_intervals`). Use it with `TrainingArguments(remove_unused_columns=False)`.

    Tokenized samples may carry `segment_ids` (the sequence builder's short-context samples: independent windows
    packed in one row). When a row of the batch has more than one segment, `attention_mask` becomes the 4-D
    boolean `(batch, 1, seq, seq)` mask of `segment_causal_mask`, which the model uses as it is.
    """

    processor: GatoProcessor
    max_length: int | None = None
    truncation: bool = False
    padding: bool | str = True
    padding_side: str = "right"

    def __call__(self, rows: list[Mapping[str, Any]]) -> BatchFeature:
        samples, segments = [], []
        for index, row in enumerate(rows):
            if all(key in row for key in TOKENIZED_KEYS):
                sample = {key: np.asarray(row[key]) for key in TOKENIZED_KEYS}
                length = len(sample["input_ids"])
                if "attention_mask" in row:  # already padded (e.g. by the sequence builder): keep the real tokens
                    length = int(np.asarray(row["attention_mask"]).sum())
                    sample = {key: value[:length] for key, value in sample.items()}
                segment_ids = row.get("segment_ids")
                segments.append(np.zeros(length, np.int64) if segment_ids is None
                                else np.asarray(segment_ids, np.int64)[:length])
                size = self.processor.image_processor.patch_size
                sample["patches"] = np.asarray(row.get("patches", np.zeros((0, 3, size, size))), np.float32)
                sample["patch_intervals"] = np.asarray(row.get("patch_intervals", np.zeros((0, 4))), np.float32)
                samples.append(sample)
            else:
                samples.append(self.processor.tokenize_sample(row, index))
                segments.append(np.zeros(len(samples[-1]["input_ids"]), np.int64))
        batch = self.processor.collate(
            samples,
            return_tensors="pt",
            padding=self.padding,
            padding_side=self.padding_side,
            max_length=self.max_length,
            truncation=self.truncation,
            return_labels=True,
        )
        if any(len(ids) and ids.max() > 0 for ids in segments):
            batch["attention_mask"] = segment_causal_mask(segments, batch["attention_mask"])
        return batch


def segment_causal_mask(segments: list[np.ndarray], attention_mask: torch.Tensor) -> torch.Tensor:
    """`(batch, 1, seq, seq)` bool: token `i` sees token `j` when `j <= i`, both are real tokens of the same segment.

    A padding token sees only itself (so no attention row is empty). `segments[b]` holds row `b`'s segment ids
    for its real tokens; `attention_mask` `(batch, seq)` is the padded 2-D mask that places them.
    """
    batch, length = attention_mask.shape
    ids = torch.full((batch, length), -1, dtype=torch.long)
    for row, segment in enumerate(segments):
        real = attention_mask[row].bool()
        ids[row, real] = torch.as_tensor(segment[: int(real.sum())], dtype=torch.long)
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    same = (ids[:, :, None] == ids[:, None, :]) & (ids[:, None, :] >= 0)
    mask = (same & causal) | torch.eye(length, dtype=torch.bool)
    return mask.unsqueeze(1)
