"""Offline action prediction: how well a model predicts the actions of held-out episodes, given their true history.

No environment is needed, so this works on any episode dataset in our SPEC columns, including a user's own
(a `collect` directory, or one written by `conversion/convert_minari_dataset.py` or `convert_jat_dataset.py`).

Protocol (teacher forcing):

- each episode is tokenized as in training (`GatoProcessor.tokenize_episode`); every action token is predicted
  from the true tokens before it (observations, and the true earlier actions, including the earlier action
  tokens of the same timestep), greedily: the argmax over the ids valid for that action slot only
  (`processor.action_token_ranges(space)`, as `GatoAgent` restricts its sampling);
- discrete actions: accuracy per action token and per whole action (every discrete token of the timestep
  right); continuous actions: the predicted bin centre against the true stored value, mean absolute error and
  root mean squared error, in the environment's units when a `Box` is known (the stored [-1, 1] value mapped
  back to the bounds, like `envs.tasks.column_to_action`; `"units": "box"`), else in the stored [-1, 1]
  units (`"units": "normalized"`);
- episodes longer than the context are cut into windows of whole timesteps. The first window starts at the
  episode's start; each later window carries the true history of the last `context_length - stride` tokens
  before its first new timestep (rounded to whole timesteps) and fills the rest of the context with new
  timesteps. Only the new timesteps' actions are scored, so every action token is scored exactly once, and
  every action after the first window sees at least about `context_length - stride` tokens of history (less
  one timestep). The default stride is half the context (each token costs about two forward passes);
  `stride=1` gives every action the longest history that fits (one window per timestep: slow).

The model runs once per window (batched, right-padded); the output layer is applied only at the positions
that predict an action token, and only to the rows of that slot's valid ids.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.sequences import _slice_sample
from ..processing_gato import GatoProcessor, _flatten_nested, _space_kind
from ..utils.arguments import data_directory, model_directory, positive_int

ACTION_COLUMNS = ("continuous_actions", "discrete_actions")  # the order of the action tokens in a timestep
MIN_SCORED_TOKENS = 20  # offline_table marks accuracies resting on fewer scored tokens (or actions) as not meaningful


# ---------------------------------------------------------------------------- action spaces
def action_space_from_description(description: Mapping[str, Any]) -> SimpleNamespace:
    """A duck-typed action space (what `GatoProcessor` and `envs.tasks.column_to_action`-style maths read)
    from `envs.tasks.describe_action_space`'s JSON (`manifest.json`'s `action_space`); gymnasium not needed."""
    if not isinstance(description, Mapping) or "type" not in description:
        raise ValueError(f"action_space: expected a dict with a 'type' (Discrete, MultiDiscrete or Box), got {description!r}.")
    kind = description["type"]
    if kind == "Discrete":
        return SimpleNamespace(type="Discrete", n=int(description["n"]), start=int(description.get("start", 0)))
    if kind == "MultiDiscrete":
        nvec = np.asarray(description["nvec"], dtype=np.int64)
        return SimpleNamespace(type="MultiDiscrete", nvec=nvec, start=np.zeros_like(nvec))
    if kind == "Box":
        shape = tuple(int(s) for s in description["shape"])
        low = np.broadcast_to(np.asarray(description["low"], np.float64), shape).copy()
        high = np.broadcast_to(np.asarray(description["high"], np.float64), shape).copy()
        return SimpleNamespace(type="Box", shape=shape, low=low, high=high, dtype=np.float32)
    raise ValueError(f"action_space: type {kind!r} is not supported; expected Discrete, MultiDiscrete or Box.")


# ---------------------------------------------------------------------------- windows
def scoring_windows(timestep_starts: np.ndarray, total_tokens: int, context_length: int,
                    stride: int) -> list[tuple[int, int, int]]:
    """`(first token, first scored token, end token)` of each window of an episode, all at timestep boundaries.

    The windows' scored ranges tile the episode: `[first scored, end)` of one window starts where the previous
    one ended. See the module docstring for the rule.
    """
    starts = np.asarray(timestep_starts, dtype=np.int64)
    ends = np.append(starts[1:], total_tokens)
    if not 1 <= stride <= context_length:
        raise ValueError(f"stride={stride} is invalid: expected 1 <= stride <= context_length={context_length}.")
    longest = int((ends - starts).max())
    if longest > context_length:
        step = int(np.argmax(ends - starts))
        raise ValueError(f"timestep {step} has {longest} tokens, more than the context of {context_length} tokens: "
                         "its action cannot be predicted from a window of whole timesteps.")
    windows, first_new, count = [], 0, len(starts)
    while first_new < count:
        # history: the earliest timestep whose tokens up to the first new one fit in context - stride
        history = 0 if first_new == 0 else int(np.argmax(starts[first_new] - starts[: first_new + 1]
                                                         <= context_length - stride))
        # if the first new timestep does not fit beside that history, carry less history
        if ends[first_new] - starts[history] > context_length:
            history = int(np.argmax(ends[first_new] - starts[: first_new + 1] <= context_length))
        last = int(np.flatnonzero(ends - starts[history] <= context_length)[-1])
        windows.append((int(starts[history]), int(starts[first_new]), int(ends[last])))
        first_new = last + 1
    return windows


# ---------------------------------------------------------------------------- episodes -> scored tokens
def _action_columns(episode: Mapping[str, Any], index: int) -> list[str]:
    columns = [c for c in ACTION_COLUMNS if episode.get(c) is not None and len(episode[c])]
    if not columns:
        raise ValueError(f"episode {index}: no action column; expected 'continuous_actions' and/or 'discrete_actions' "
                         f"(SPEC columns), got {sorted(episode)}.")
    return columns


def _per_step(column: Sequence[Any], where: str, dtype) -> np.ndarray:
    """A column's values as `(timesteps, values per step)`."""
    try:
        matrix = np.asarray(column, dtype=dtype)
        if matrix.dtype != object and matrix.ndim >= 1:
            return matrix.reshape(len(column), -1)
    except (ValueError, TypeError):
        pass
    rows = [_flatten_nested(value, f"{where}, step {t}").astype(dtype) for t, value in enumerate(column)]
    if len({len(r) for r in rows}) != 1:
        raise ValueError(f"{where}: every timestep must have the same number of action values, got "
                         f"{sorted({len(r) for r in rows})}.")
    return np.stack(rows)


def _slot_layout(action_space: Any, processor: GatoProcessor, sizes: dict[str, int],
                 observed_max: np.ndarray | None, num_actions: int | Sequence[int] | None):
    """`(ranges, box)`: per action slot the half-open id range, and (low, high) of the continuous slots or None."""
    continuous, discrete = sizes.get("continuous_actions", 0), sizes.get("discrete_actions", 0)
    continuous_range = (processor.continuous_offset, processor.continuous_offset + processor.num_bins)
    if action_space is not None:
        if isinstance(action_space, Mapping):
            action_space = action_space_from_description(action_space)
        kind = _space_kind(action_space)
        expected = "continuous_actions" if kind == "box" else "discrete_actions"
        if set(sizes) != {expected}:
            raise ValueError(f"the episodes have {sorted(sizes)}, but a {type(action_space).__name__} action space "
                             f"({kind}) needs exactly {expected!r}.")
        ranges = processor.action_token_ranges(action_space)
        if len(ranges) != sizes[expected]:
            raise ValueError(f"{expected}: {sizes[expected]} values per timestep, but the action space has "
                             f"{len(ranges)} dimensions.")
        if kind == "box":
            low = np.asarray(action_space.low, np.float64).reshape(-1)
            high = np.asarray(action_space.high, np.float64).reshape(-1)
            return ranges, (low, high)
        return ranges, None
    ranges = [continuous_range] * continuous
    if discrete:
        if num_actions is not None:
            counts = np.broadcast_to(np.asarray(num_actions, np.int64).reshape(-1), (discrete,))
        else:
            counts = observed_max + 1
        ranges += [(0, int(n)) for n in counts]
    return ranges, None


def _prepare(processor: GatoProcessor, episodes: Sequence[Mapping[str, Any]]) -> tuple[list[dict], dict[str, int]]:
    """Tokenize the episodes; per episode the action token positions, their slots and the true stored values."""
    prepared, sizes_seen = [], None
    for index, episode in enumerate(episodes):
        if not isinstance(episode, Mapping):
            raise ValueError(f"episode {index}: expected a mapping of SPEC columns, got {type(episode).__name__}.")
        columns = _action_columns(episode, index)
        values = {c: _per_step(episode[c], f"episode {index}, {c}", np.float64 if c == "continuous_actions"
                               else np.int64) for c in columns}
        sizes = {c: v.shape[1] for c, v in values.items()}
        if sizes_seen is None:
            sizes_seen = sizes
        elif sizes != sizes_seen:
            raise ValueError(f"episode {index}: action values per timestep {sizes}, but episode 0 has {sizes_seen}; "
                             "score one task (one action space) at a time.")
        if "continuous_actions" in values:
            stored = values["continuous_actions"]
            if not np.isfinite(stored).all() or np.abs(stored).max() > 1 + 1e-6:
                raise ValueError(f"episode {index}, continuous_actions: stored actions must be finite and in [-1, 1] "
                                 f"(the Box bounds mapped there, SPEC section 2); got values in "
                                 f"[{np.nanmin(stored):.3g}, {np.nanmax(stored):.3g}].")
        tokens = processor.tokenize_episode(episode, episode_index=index)
        positions = np.flatnonzero(tokens["action_mask"])
        slots_per_step = sum(sizes.values())
        steps = len(tokens["timestep_starts"])
        if len(positions) != steps * slots_per_step:
            raise ValueError(f"episode {index}: {len(positions)} action tokens for {steps} timesteps of "
                             f"{slots_per_step} action values.")
        true_values = np.concatenate([values[c] for c in ACTION_COLUMNS if c in values], axis=1).reshape(-1)
        prepared.append({
            "tokens": tokens,
            "positions": positions,
            "slots": np.tile(np.arange(slots_per_step), steps),
            "steps": np.repeat(np.arange(steps), slots_per_step),
            "true_values": true_values,
        })
    if sizes_seen is None:
        raise ValueError("episodes: expected at least one episode, got none.")
    return prepared, sizes_seen


def slot_logits(model, states: torch.Tensor, slots: np.ndarray, ranges: Sequence[tuple[int, int]] | np.ndarray):
    """The logits the agent samples each action token from: for hidden `states` (n, hidden) predicting action tokens
    of slots `slots` (n,), yield `(which, low, logits)` per distinct id range `[low, high)` of `ranges[slot]`:
    `which` indexes the states in that range, `logits` (len(which), high - low) are float32 over its ids only.
    The output rows include the value-aware term of `continuous_embedding="table+fourier"` models
    (`GatoForCausalModeling.output_rows`); another causal LM is scored with its output layer's rows."""
    ranges = np.asarray(ranges, np.int64)
    head = model.get_output_embeddings()
    bias = getattr(head, "bias", None)
    slots = np.asarray(slots, np.int64)
    for low, high in sorted({tuple(r) for r in ranges[slots].tolist()}):
        which = np.flatnonzero((ranges[slots, 0] == low) & (ranges[slots, 1] == high))
        rows = model.output_rows(low, high) if hasattr(model, "output_rows") else head.weight[low:high]
        index = torch.as_tensor(which, device=states.device)
        yield which, low, F.linear(states[index], rows, None if bias is None else bias[low:high]).float()


@torch.no_grad()
def _predict(model, processor: GatoProcessor, prepared: list[dict], ranges: list[tuple[int, int]],
             context_length: int, stride: int, batch_size: int, progress: bool) -> None:
    """Fill `prepared[i]["predicted"]`: the greedy id of every action token (in `positions` order)."""
    jobs = []
    for number, item in enumerate(prepared):
        item["predicted"] = np.full(len(item["positions"]), -1, np.int64)
        tokens = item["tokens"]
        for window in scoring_windows(tokens["timestep_starts"], len(tokens["input_ids"]), context_length, stride):
            jobs.append((number, window))
    device = model.device
    slot_ranges = np.asarray(ranges, np.int64)
    bar = tqdm(total=len(jobs), desc="offline action prediction", unit="window", disable=not progress)
    for begin in range(0, len(jobs), batch_size):
        batch_jobs = jobs[begin : begin + batch_size]
        samples = [_slice_sample(prepared[n]["tokens"], a, b) for n, (a, _, b) in batch_jobs]
        batch = processor.collate(samples, return_tensors="pt", max_length=context_length)
        inputs = {k: v.to(device) for k, v in batch.items() if k != "loss_mask"}
        hidden = model.model(**inputs, use_cache=False).last_hidden_state  # (batch, seq, hidden)
        rows, columns, owners = [], [], []
        for row, (number, (first, scored_from, end)) in enumerate(batch_jobs):
            positions = prepared[number]["positions"]
            chosen = np.flatnonzero((positions >= scored_from) & (positions < end))
            rows.append(np.full(len(chosen), row))
            columns.append(positions[chosen] - first - 1)  # the position before a token predicts it
            owners += [(number, i) for i in chosen]
        rows, columns = np.concatenate(rows), np.concatenate(columns)
        states = hidden[torch.as_tensor(rows, device=device), torch.as_tensor(columns, device=device)]
        slots = np.array([prepared[n]["slots"][i] for n, i in owners], np.int64)
        predicted = np.zeros(len(owners), np.int64)
        for which, low, logits in slot_logits(model, states, slots, slot_ranges):
            predicted[which] = low + logits.argmax(dim=-1).cpu().numpy()
        for (number, i), value in zip(owners, predicted):
            prepared[number]["predicted"][i] = value
        bar.update(len(batch_jobs))
    bar.close()


def action_prediction_metrics(
    model,
    processor: GatoProcessor,
    episodes: Any,
    action_space: Any = None,
    context_length: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
    stride: int | None = None,
    num_actions: int | Sequence[int] | None = None,
    return_predictions: bool = False,
) -> dict[str, Any]:
    """Greedy next-action prediction on `episodes` given their true history (see the module docstring).

    Args:
        model: a `GatoForCausalModeling` (run in eval mode here; its mode is restored afterwards).
        processor: the matching `GatoProcessor`.
        episodes: a `datasets.Dataset` or a list of rows in SPEC columns, all of one task (one action space).
        action_space: a gymnasium space, or its `describe_action_space` dict (as in `manifest.json`). Without it:
            continuous actions are scored over the 1024 bins in stored [-1, 1] units; discrete slots over
            `[0, n)` with `n = num_actions` or `1 + the largest value in the episodes`.
        context_length: window in tokens (default the model's `max_position_embeddings`).
        stride: new tokens per window after the first (default half the context).
        num_actions: discrete only, without a space: the number of actions (per slot, or one for all).
        return_predictions: add `predictions`: per episode, the greedy ids `(timesteps, action tokens)`.

    Returns a dict: `episodes`, `timesteps`, `action_tokens` (scored), `discrete_tokens`,
    `token_accuracy` and `action_accuracy` (discrete slots; None without), `continuous_tokens`, `mae`, `rmse`,
    `mae_per_dimension` and `units` (continuous slots; None without), `context_length`, `stride`.
    """
    for name, value in (("context_length", context_length), ("stride", stride), ("batch_size", batch_size)):
        if value is not None and int(value) < 1:
            raise ValueError(f"{name}={value} is invalid: expected an integer >= 1.")
    context_length = int(context_length or model.config.max_position_embeddings)
    if context_length > model.config.max_position_embeddings:
        raise ValueError(f"context_length={context_length} is longer than the model's "
                         f"max_position_embeddings={model.config.max_position_embeddings}.")
    stride = context_length // 2 if stride is None else int(stride)
    if hasattr(episodes, "column_names"):  # a datasets.Dataset: rows one at a time
        episodes = [episodes[i] for i in range(len(episodes))]
    elif isinstance(episodes, Mapping):
        episodes = [episodes]
    episodes = list(episodes)
    prepared, sizes = _prepare(processor, episodes)
    num_continuous = sizes.get("continuous_actions", 0)
    observed_max = None
    if "discrete_actions" in sizes:
        discrete_true = np.stack([p["true_values"].reshape(-1, sum(sizes.values()))[:, num_continuous:].max(0)
                                  for p in prepared])
        observed_max = discrete_true.max(0).astype(np.int64)
    ranges, box = _slot_layout(action_space, processor, sizes, observed_max, num_actions)
    for number, item in enumerate(prepared):  # true discrete values must be valid ids of their slot
        for slot in range(num_continuous, len(ranges)):
            values = item["true_values"][item["slots"] == slot]
            if len(values) and values.max() >= ranges[slot][1]:
                raise ValueError(f"episode {number}, discrete_actions: value {int(values.max())} in slot "
                                 f"{slot - num_continuous} is outside [0, {ranges[slot][1]}) of the action space.")

    was_training = model.training
    model.eval()
    try:
        _predict(model, processor, prepared, ranges, context_length, stride, batch_size, progress)
    finally:
        model.train(was_training)

    slots = np.concatenate([p["slots"] for p in prepared])
    steps = np.concatenate([p["steps"] + 1_000_000_000 * n for n, p in enumerate(prepared)])  # unique per episode
    predicted = np.concatenate([p["predicted"] for p in prepared])
    true_values = np.concatenate([p["true_values"] for p in prepared])
    true_ids = np.concatenate([p["tokens"]["input_ids"][p["positions"]] for p in prepared])
    result: dict[str, Any] = {
        "episodes": len(prepared),
        "timesteps": int(sum(len(p["tokens"]["timestep_starts"]) for p in prepared)),
        "action_tokens": int(len(predicted)),
        "context_length": context_length,
        "stride": stride,
        "discrete_tokens": 0, "token_accuracy": None, "action_accuracy": None,
        "continuous_tokens": 0, "mae": None, "rmse": None, "mae_per_dimension": None, "units": None,
    }
    discrete = slots >= num_continuous
    if discrete.any():
        correct = predicted[discrete] == true_ids[discrete]
        _, step_index = np.unique(steps[discrete], return_inverse=True)
        whole = np.bincount(step_index, weights=(~correct).astype(np.float64)) == 0
        result.update(discrete_tokens=int(discrete.sum()), token_accuracy=float(correct.mean()),
                      action_accuracy=float(whole.mean()))
    if num_continuous:
        continuous = ~discrete
        predicted_values = processor.discretizer.decode(predicted[continuous], mu_law=False)
        stored = true_values[continuous]
        dimension = slots[continuous]
        if box is not None:
            low, high = box[0][dimension], box[1][dimension]
            bounded = np.isfinite(low) & np.isfinite(high)
            scale = np.where(bounded, (high - low) / 2, 1.0)  # stored [-1, 1] -> Box units: low + (v + 1) / 2 * (high - low)
            errors = (predicted_values - stored) * scale
        else:
            errors = predicted_values - stored
        result.update(
            continuous_tokens=int(continuous.sum()),
            mae=float(np.abs(errors).mean()),
            rmse=float(np.sqrt(np.mean(errors**2))),
            mae_per_dimension=[float(np.abs(errors[dimension == d]).mean()) for d in range(num_continuous)],
            units="box" if box is not None else "normalized",
        )
    if return_predictions:
        result["predictions"] = [p["predicted"].reshape(len(p["tokens"]["timestep_starts"]), -1) for p in prepared]
    return result


# ---------------------------------------------------------------------------- directories
def directory_tasks(data_dir: str) -> tuple[list[str], dict[str, Any]]:
    """The tasks of an episode directory (`manifest.json`'s, else the folders under `episodes/`) and the manifest."""
    manifest_path = os.path.join(data_dir, "manifest.json")
    manifest: dict[str, Any] = {}
    if os.path.isfile(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
    episodes_dir = os.path.join(data_dir, "episodes")
    if not os.path.isdir(episodes_dir):
        raise FileNotFoundError(f"{data_dir}: no episodes/ folder; expected a directory written by `collect` or a "
                                "converter (episodes/<task>/ datasets, manifest.json).")
    tasks = list(manifest.get("tasks", {})) or sorted(
        name for name in os.listdir(episodes_dir) if os.path.isdir(os.path.join(episodes_dir, name)))
    return tasks, manifest


def offline_metrics_for_directory(
    model,
    processor: GatoProcessor,
    data_dir: str,
    tasks: list[str] | None = None,
    held_out: int = 1,
    context_length: int | None = None,
    stride: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> dict[str, Any]:
    """`action_prediction_metrics` on the last `held_out` episodes of each task of an episode directory.

    These are the episodes `train --eval-episodes K` holds out. A task with `held_out` episodes or fewer is scored
    on all of them, and its entry says `"in_training_data": true` (train then holds nothing out). Action spaces
    come from `manifest.json` (`tasks.<task>.action_space`) when it has them; otherwise they are inferred.
    """
    from datasets import load_from_disk

    if held_out < 1:
        raise ValueError(f"held_out={held_out} is invalid: expected at least 1 episode per task.")
    known, manifest = directory_tasks(data_dir)
    tasks = list(tasks) if tasks else known
    results: dict[str, Any] = {"data_dir": os.path.abspath(data_dir), "held_out": held_out, "tasks": {}}
    for task in tasks:
        path = os.path.join(data_dir, "episodes", task)
        if not os.path.isdir(path):
            raise ValueError(f"task {task!r}: no dataset at {path}; tasks in {data_dir}: {known}.")
        dataset = load_from_disk(path)
        in_training = len(dataset) <= held_out
        rows = dataset.select(range(max(0, len(dataset) - held_out), len(dataset)))
        info = manifest.get("tasks", {}).get(task, {})
        metrics = action_prediction_metrics(model, processor, rows, action_space=info.get("action_space"),
                                            context_length=context_length, stride=stride, batch_size=batch_size,
                                            progress=progress)
        metrics["domain"] = info.get("domain")
        metrics["in_training_data"] = in_training
        results["tasks"][task] = metrics
        results["context_length"], results["stride"] = metrics["context_length"], metrics["stride"]
    return results


def offline_table(results: dict[str, Any]) -> str:
    """A markdown table of `offline_metrics_for_directory`'s results."""

    def number(value, digits=3):
        return "n/a" if value is None else f"{value:.{digits}f}"

    def percent(value, count: int, unit: str):
        if value is None:
            return "n/a"
        if count >= MIN_SCORED_TOKENS:
            return f"{value:.1%}"
        return f"{value:.1%} ({count} {unit}{'' if count == 1 else 's'})"

    lines = ["| task | episodes | timesteps | action tokens | token accuracy | action accuracy | MAE | RMSE | units |",
             "|---|---|---|---|---|---|---|---|---|"]
    for task, r in results["tasks"].items():
        note = " (in training data)" if r.get("in_training_data") else ""
        tokens = int(r.get("discrete_tokens") or 0)
        lines.append(f"| {task}{note} | {r['episodes']} | {r['timesteps']} | {r['action_tokens']} | "
                     f"{percent(r['token_accuracy'], tokens, 'token')} | "
                     f"{percent(r['action_accuracy'], int(r['timesteps']), 'action')} | {number(r['mae'])} | "
                     f"{number(r['rmse'])} | {r['units'] or 'n/a'} |")
    lines.append("")
    lines.append(f"Greedy next-action prediction given the true history (teacher forcing) on the last "
                 f"{results['held_out']} episode(s) of each task; windows of {results.get('context_length')} tokens, "
                 f"stride {results.get('stride')}. MAE/RMSE: continuous actions, in the action space's units ('box') "
                 f"or the stored [-1, 1] units ('normalized'). An accuracy followed by a count in parentheses rests on "
                 f"fewer than {MIN_SCORED_TOKENS} scored action tokens (or actions): such figures are not meaningful.")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=model_directory, help="a saved model directory (model + processor)")
    parser.add_argument("--data", required=True, type=data_directory, help="an episode directory (from `collect` or a converter)")
    parser.add_argument("--tasks", nargs="*", default=None, help="tasks to score (default: all in --data)")
    parser.add_argument("--held-out", type=positive_int, default=1,
                        help="score the last K episodes of each task (the ones `train --eval-episodes K` holds out)")
    parser.add_argument("--context-length", type=positive_int, default=None, help="window in tokens (default: the model's)")
    parser.add_argument("--stride", type=positive_int, default=None, help="new tokens per window (default: half the window)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="windows per forward pass")
    parser.add_argument("--output-dir", default=None, help="where to write results (default: <model>/offline)")
    parser.add_argument("--device", default=None)


def main(args: argparse.Namespace) -> int:
    from ..hub.loading import load_model

    model, processor = load_model(args.model, args.device)
    results = offline_metrics_for_directory(model, processor, args.data, args.tasks, args.held_out,
                                            args.context_length, args.stride, args.batch_size)
    output_dir = args.output_dir or os.path.join(args.model, "offline")
    os.makedirs(output_dir, exist_ok=True)
    table = offline_table(results)
    with open(os.path.join(output_dir, "offline_results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(output_dir, "offline_results.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    print(f"wrote {output_dir}/offline_results.md, offline_results.json")
    return 0
