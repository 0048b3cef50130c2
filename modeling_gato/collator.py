"""A data collator that `transformers.Trainer` can use on raw `datasets` rows of any kind."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from transformers.feature_extraction_utils import BatchFeature

from .processing_gato import GatoProcessor

TOKENIZED_KEYS = ("input_ids", "patch_mask", "local_positions", "action_mask", "loss_mask")


@dataclass
class GatoDataCollator:
    """Tokenizes and pads a list of rows into a training batch with `labels` (-100 off the loss mask).

    Rows are episodes, text, caption or VQA rows (see `GatoProcessor.tokenize_sample`), or samples that are
    already tokenized (they carry `input_ids`, `patch_mask`, `local_positions`, `action_mask`, `loss_mask`,
    `patches`, `patch_intervals`). Use it with `TrainingArguments(remove_unused_columns=False)`.
    """

    processor: GatoProcessor
    max_length: int | None = None
    truncation: bool = False
    padding: bool | str = True
    padding_side: str = "right"

    def __call__(self, rows: list[Mapping[str, Any]]) -> BatchFeature:
        samples = []
        for index, row in enumerate(rows):
            if all(key in row for key in TOKENIZED_KEYS):
                sample = {key: np.asarray(row[key]) for key in TOKENIZED_KEYS}
                if "attention_mask" in row:  # already padded (e.g. by the sequence builder): keep the real tokens
                    length = int(np.asarray(row["attention_mask"]).sum())
                    sample = {key: value[:length] for key, value in sample.items()}
                size = self.processor.image_processor.patch_size
                sample["patches"] = np.asarray(row.get("patches", np.zeros((0, 3, size, size))), np.float32)
                sample["patch_intervals"] = np.asarray(row.get("patch_intervals", np.zeros((0, 4))), np.float32)
                samples.append(sample)
            else:
                samples.append(self.processor.tokenize_sample(row, index))
        return self.processor.collate(
            samples,
            return_tensors="pt",
            padding=self.padding,
            padding_side=self.padding_side,
            max_length=self.max_length,
            truncation=self.truncation,
            return_labels=True,
        )
