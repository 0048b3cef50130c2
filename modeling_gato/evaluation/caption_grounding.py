"""Object-level grounding of BabyAI captions: does a generated caption name the objects really in view?

`python -m modeling_gato collect` captions BabyAI agent views in a small template language
(`modeling_gato.data.collect.babyai_caption`), e.g. "a room with one grey door and two red balls in view" or
"an empty room with nothing but the floor and walls in view". Such a caption is a multiset of (color, object)
pairs, so a generated caption can be scored against its reference object by object rather than by its wording:

- `caption_objects(text)`: the (color, object) multiset named by any "<number> <color> <object(s)>" phrases in
  `text` (a `Counter`); anything else in the text is ignored, so it is safe on a model's free generation.
- `grounding_scores(references, predictions)`: per-caption precision / recall / F1 over those multisets,
  averaged over captions, with exact-match rates and how often a prediction names something really in view.
- `best_constant_caption(captions)`: the one caption that, said of every image, scores the highest mean F1 on
  `captions`: the best a captioner blind to the image can do.
- `measure_caption_grounding(model, processor, data_dir)`: scores a model's greedy captions of the held-out
  caption rows against two blind captioners chosen on the training rows: the "template prior" (the most frequent
  training caption) and the best constant caption, each predicted for every image.
- `grounding_table(result)`: the rows of that comparison as a markdown table.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from typing import Any

# minigrid.core.constants.COLOR_NAMES and the objects `describe_babyai_view` reports (no minigrid import needed).
COLOR_NAMES = ("red", "green", "blue", "purple", "yellow", "grey")
OBJECT_NAMES = ("door", "key", "ball", "box", "goal", "lava")
# modeling_gato.data.collect.NUMBER_WORDS ("no" = 0 names nothing); `babyai_caption` writes digits from 11 on.
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

_NUMBER_VALUES = {word: value for value, word in enumerate(NUMBER_WORDS)}
_OBJECT_FORMS = {}
for _name in OBJECT_NAMES:
    _OBJECT_FORMS[_name] = _name
    _OBJECT_FORMS[_name + ("es" if _name.endswith(("x", "s")) else "s")] = _name  # collect.plural
_PHRASE = re.compile(
    r"\b(?P<number>" + "|".join(NUMBER_WORDS) + r"|\d+)\s+"
    r"(?P<color>" + "|".join(COLOR_NAMES) + r")\s+"
    r"(?P<object>" + "|".join(sorted(_OBJECT_FORMS, key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)


def caption_objects(text: str) -> Counter:
    """The multiset of (color, object) pairs named in a caption, e.g.
    `caption_objects("a room with one grey door and two red balls in view")`
    == `Counter({("grey", "door"): 1, ("red", "ball"): 2})`.

    Only "<number> <color> <object>" phrases count: the number is one of collect's NUMBER_WORDS ("no" names
    nothing) or digits, the color one of minigrid's COLOR_NAMES, the object door/key/ball/box/goal/lava in
    singular or plural form (either form is accepted whatever the number). Matching ignores case and requires
    whole words; phrases naming the same pair add up; all other text, including an empty room's caption,
    truncated phrases and garbage, contributes nothing (an empty Counter)."""
    objects: Counter = Counter()
    for match in _PHRASE.finditer(text or ""):
        number = match.group("number").lower()
        count = int(number) if number.isdigit() else _NUMBER_VALUES[number]
        if count > 0:
            objects[(match.group("color").lower(), _OBJECT_FORMS[match.group("object").lower()])] += count
    return objects


def caption_scores(reference: Counter, prediction: Counter) -> dict[str, float]:
    """Precision, recall and F1 of one predicted (color, object) multiset against the reference one.

    matched = sum over pairs of min(reference count, predicted count); precision = matched / predicted total,
    recall = matched / reference total, F1 their harmonic mean (0 when both are 0). Empty cases: both empty is a
    perfect match (all 1); exactly one empty scores 0 on all three (an object named in an empty view, or no
    object named for a view with objects, is never rewarded: a 0/0 ratio counts as 0)."""
    predicted, expected = sum(prediction.values()), sum(reference.values())
    if predicted == 0 and expected == 0:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    matched = sum((reference & prediction).values())
    precision = matched / predicted if predicted else 0.0
    recall = matched / expected if expected else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _normalize(text: str) -> str:
    return " ".join((text or "").split())


def grounding_scores(references: list[str], predictions: list[str]) -> dict[str, Any]:
    """Object-level scores of predicted captions against reference captions, pair by pair.

    - "precision", "recall", "f1": per-caption values of `caption_scores` over the `caption_objects`
      multisets, averaged over captions (macro average). An empty-room reference with a prediction naming no
      object (which includes text naming nothing parseable) scores 1; exactly one side empty scores 0.
    - "exact_match": fraction of predictions equal to their reference text (whitespace-normalized, so only
      leading/trailing/repeated whitespace is forgiven).
    - "objects_match": fraction whose (color, object) multiset equals the reference's (both empty included).
    - "names_an_object_in_view": among references naming at least one object, the fraction whose prediction
      names at least one (color, object) pair that is in the reference; None when no reference names an object.
    - "captions": number of pairs; "captions_with_objects": references naming at least one object.
    """
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    if not references:
        raise ValueError("no captions to score")
    per_caption, exact, same, named, with_objects = [], 0, 0, 0, 0
    for reference, prediction in zip(references, predictions):
        expected, predicted = caption_objects(reference), caption_objects(prediction)
        per_caption.append(caption_scores(expected, predicted))
        exact += _normalize(reference) == _normalize(prediction)
        same += expected == predicted
        if expected:
            with_objects += 1
            named += bool(expected & predicted)
    n = len(references)
    return {
        "precision": sum(s["precision"] for s in per_caption) / n,
        "recall": sum(s["recall"] for s in per_caption) / n,
        "f1": sum(s["f1"] for s in per_caption) / n,
        "exact_match": exact / n,
        "objects_match": same / n,
        "names_an_object_in_view": named / with_objects if with_objects else None,
        "captions": n,
        "captions_with_objects": with_objects,
    }


def best_constant_caption(captions: list[str]) -> str:
    """The caption among `captions` whose object multiset, predicted for every one of them, has the highest mean
    F1 (`grounding_scores`; ties go to the caption seen first). Where the most frequent caption is an empty room
    (a frequent view that names nothing), this is the stronger blind baseline."""
    if not captions:
        raise ValueError("no captions to choose from")
    counts = Counter(captions)  # insertion order: first seen first
    objects = {text: caption_objects(text) for text in counts}
    best, best_total = None, -1.0
    for candidate in counts:
        total = sum(count * caption_scores(objects[text], objects[candidate])["f1"] for text, count in counts.items())
        if total > best_total:
            best, best_total = candidate, total
    return best


def held_out_caption_start(rows: int) -> int:
    """Index of the first held-out caption row: `modeling_gato.training.train.split_sources` trains on the first
    `sequences.training_row_count(rows)` rows and holds out the rest (the last 5%)."""
    from ..data.sequences import training_row_count

    return training_row_count(rows)


def measure_caption_grounding(model, processor, data_dir: str, count: int | None = None) -> dict[str, Any]:
    """Score a model's greedy captions of the held-out caption rows of `<data_dir>/captions`, the template prior's
    and the best constant caption's.

    The held-out rows are the last 5% that `split_sources` never trains on; `count` evaluates only the last
    `count` of them (it is clamped to the held-out rows, so it never reaches into training rows). The template
    prior predicts, for every held-out image, the single most frequent caption text among the training rows
    (the rows before the held-out ones; ties go to the caption seen first); the best constant caption is
    `best_constant_caption` of those training rows. Each caption is generated as in
    `demo._sample_captions`: `processor(images=image)`, `model.generate(max_new_tokens=16, do_sample=False)`,
    the new tokens decoded without special tokens and stripped.

    Returns {"model": grounding_scores, "prior": grounding_scores, "best_constant": grounding_scores,
    "captions": N, "prior_caption": text, "best_constant_caption": text, "samples": [{"reference", "generated"},
    ...] (the first 6)}."""
    import torch
    from datasets import load_from_disk

    path = os.path.join(data_dir, "captions")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no captions dataset at {path}: run `python -m modeling_gato collect` first")
    rows = load_from_disk(path)
    start = held_out_caption_start(len(rows))
    if start >= len(rows):
        raise ValueError(f"{path} has {len(rows)} rows: too few to hold any out")
    if count is not None:
        if count < 1:
            raise ValueError(f"count must be positive, got {count}")
        first = max(start, len(rows) - count)
    else:
        first = start
    texts = list(rows.select_columns(["text"])["text"])
    prior_caption = Counter(texts[:start]).most_common(1)[0][0]
    constant_caption = best_constant_caption(texts[:start])
    held_out = rows.select(range(first, len(rows)))

    references, generated = [], []
    device = getattr(model, "device", None)
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        for row in held_out:
            inputs = processor(images=row["image"])
            if device is not None:
                inputs = inputs.to(device)
            with torch.no_grad():
                output = model.generate(**inputs, max_new_tokens=16, do_sample=False)
            text = processor.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            references.append(row["text"])
            generated.append(text.strip())
    finally:
        if was_training:
            model.train()
    return {
        "model": grounding_scores(references, generated),
        "prior": grounding_scores(references, [prior_caption] * len(references)),
        "best_constant": grounding_scores(references, [constant_caption] * len(references)),
        "captions": len(references),
        "prior_caption": prior_caption,
        "best_constant_caption": constant_caption,
        "samples": [{"reference": r, "generated": g} for r, g in zip(references[:6], generated[:6])],
    }


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def grounding_table(result: dict[str, Any]) -> str:
    """A markdown table of `measure_caption_grounding`'s result: the model, the template prior and (in results
    that have it) the best constant caption."""
    lines = [
        "| captioner | F1 | precision | recall | exact match | names an object in view | N |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, key in (("model", "model"), ("template prior", "prior"), ("best constant caption", "best_constant")):
        if key not in result:
            continue
        s = result[key]
        lines.append(
            f"| {label} | {_cell(s['f1'])} | {_cell(s['precision'])} | {_cell(s['recall'])} | "
            f"{_cell(s['exact_match'])} | {_cell(s['names_an_object_in_view'])} | {s['captions']} |"
        )
    return "\n".join(lines)
