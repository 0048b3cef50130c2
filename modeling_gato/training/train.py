"""`python -m modeling_gato train`: train or fine-tune Gato with `transformers.Trainer` (and `accelerate`).

The optimizer and schedule are the paper's (section 4 / appendix): AdamW (beta1 0.9, beta2 0.95, eps 1e-8), weight
decay 0.1, gradient clipping 1.0 (our choice), learning rate warmed up linearly from 1e-7 to the peak and then
cosine-decayed to a tenth of it; the number of steps, the batch and the model size are the user's. The defaults are
a small-budget recipe chosen by measurement (README, "Learning to act at small budgets"): peak 1e-3 after 20 steps
(the paper: 1e-4 after 15,000), value-aware continuous embeddings for a new model (the paper: the plain table), and
half of the episode samples packed from short independent windows (the paper: none).

Data: one or more directories written by `collect`, mixed by per-task / per-domain weights through the
sequence builder; the last `--eval-episodes` episodes of every task are held out and give a per-task
evaluation loss (`eval_<task>_loss`, full vocabulary) and the policy's loss and accuracy among each action slot's
valid ids (`eval_<task>_policy_loss`, `eval_<task>_policy_accuracy`), scored on the windows the agent acts on
(`policy_samples`: one-timestep windows for a model trained with short-context samples).

Distributed: run the same command under `accelerate launch` (DDP; `--fsdp "full_shard auto_wrap"` for large
models) or `torchrun`. On CPU: `accelerate launch --multi_gpu --num_processes 2 -m modeling_gato train ...`
(`--cpu` starts one process only).

The output directory is Hub-ready: weights, processor, remote code, a model card (README.md) with the data,
steps and measured losses, `loss_curve.png`, `training_config.json`. Checkpoints (`checkpoint-<step>`) hold the
optimizer, scheduler and RNG states and the run's `training_config.json` (written into the output directory when the
run starts, and into each checkpoint); `--resume` continues from the latest complete one. `evaluate` and `act` play
a checkpoint, also one of a run still going or killed, with that `training_config.json` (the acting history and the
held-out episodes).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from ..agent import _prompt_sample
from ..configuration_gato import GatoConfig
from ..data.collator import GatoDataCollator
from ..data.sequences import (
    GatoSequenceBuilder,
    Source,
    _concatenate,
    _slice_sample,
    training_episode_count,
    training_row_count,
)
from ..evaluation.offline import action_space_from_description, slot_logits
from ..hub.cards import card_front_matter, is_generic_card, prepare_card_for_push, usage_snippet
from ..modeling_gato import GATO_TOKEN_INPUTS, GatoForCausalModeling
from ..processing_gato import GatoProcessor
from ..utils.arguments import data_directory, local_model_directory
from ..utils.jobs import write_json_atomic

CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt", "model.safetensors")
TINY = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, head_dim=32, intermediate_size=512)


@dataclass
class TrainConfig:
    """Everything a training run needs; every field is also a command-line flag (`--field-name`)."""

    data: list[str] = field(default_factory=list)
    output_dir: str = "outputs/train"
    weights: dict[str, float] = field(default_factory=dict)
    variant: str = "small"  # tiny | small | baseline | large
    model_overrides: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None  # a saved model directory to fine-tune
    context_length: int = 1024
    max_steps: int = 1000
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-3  # the paper: 1e-4 (for 512 x 1024-token batches over 1M steps)
    initial_learning_rate: float = 1e-7
    final_learning_rate_ratio: float = 0.1
    warmup_steps: int = 20  # the paper: 15,000
    weight_decay: float = 0.1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    prompt_probability: float = 0.25
    short_context_probability: float = 0.5  # the paper: 0 (every sample a long window)
    short_context_timesteps: int = 4
    short_context_prompt_tokens: int = 0  # each short window starts with a demonstration's end (0: none)
    continuous_embedding: str = "table+fourier"  # for a new model; the paper: "table"
    eval_episodes: int = 2
    eval_samples_per_task: int = 16
    eval_steps: int = 200
    save_steps: int = 200
    save_total_limit: int | None = 3
    logging_steps: int = 10
    bf16: bool = False
    gradient_checkpointing: bool = False
    fsdp: str = ""
    dataloader_num_workers: int = 0  # processes building samples beside the training loop (each its own stream)
    max_minutes: float | None = None  # stop (and save) when the wall-clock budget is spent
    seed: int = 0
    resume: bool = False
    push_to_hub: bool = False
    hub_model_id: str | None = None

    def check(self) -> TrainConfig:
        """Every setting in its range, the data and `init_from` directories readable, before any work starts;
        a ValueError naming the flag otherwise. Returns self."""
        def fail(name: str, expected: str) -> None:
            raise ValueError(f"--{name.replace('_', '-')}: expected {expected}, got {getattr(self, name)!r}.")

        for name, (kind, low, high, open_low, open_high) in _SETTING_RANGES.items():
            value = getattr(self, name)
            if value is None and name in ("save_total_limit", "max_minutes"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
                fail(name, "an integer" if kind is int else "a number")
            if not math.isfinite(value) or (value <= low if open_low else value < low) or (
                    high is not None and (value >= high if open_high else value > high)):
                lower, upper = ("(" if open_low else "[") + f"{low:g}", "inf)" if high is None else (
                    f"{high:g}" + (")" if open_high else "]"))
                fail(name, f"{'an integer' if kind is int else 'a number'} in {lower}, {upper}")
        if self.short_context_prompt_tokens >= self.context_length:
            fail("short_context_prompt_tokens", f"fewer tokens than the context ({self.context_length})")
        if self.variant not in ("tiny", "small", "baseline", "large"):
            fail("variant", "tiny, small, baseline or large")
        if self.continuous_embedding not in ("table", "table+fourier"):
            fail("continuous_embedding", "'table' (the paper's) or 'table+fourier'")
        for source, weight in self.weights.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
                raise ValueError(f"--weights: expected a finite number >= 0 for {source!r}, got {weight!r}.")
        if not self.data:
            raise ValueError("--data: pass at least one directory written by `python -m modeling_gato collect`.")
        for directory in self.data:
            try:
                data_directory(directory)
            except argparse.ArgumentTypeError as error:
                raise ValueError(f"--data: {error}.") from None
        if self.init_from is not None:
            try:
                local_model_directory(self.init_from)
            except argparse.ArgumentTypeError as error:
                raise ValueError(f"--init-from: {error}.") from None
        return self

    @classmethod
    def from_file(cls, path: str) -> dict[str, Any]:
        with open(path) as f:
            if path.endswith((".yaml", ".yml")):
                import yaml

                values = yaml.safe_load(f) or {}
            else:
                values = json.load(f)
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown training settings {sorted(unknown)}.")
        return values


# field: (int or float, low, high or None, low excluded, high excluded)
_SETTING_RANGES = {
    "context_length": (int, 1, None, False, False),
    "max_steps": (int, 1, None, False, False),
    "batch_size": (int, 1, None, False, False),
    "gradient_accumulation_steps": (int, 1, None, False, False),
    "learning_rate": (float, 0, None, True, False),
    "initial_learning_rate": (float, 0, None, False, False),
    "final_learning_rate_ratio": (float, 0, 1, False, False),
    "warmup_steps": (int, 0, None, False, False),
    "weight_decay": (float, 0, None, False, False),
    "adam_beta1": (float, 0, 1, False, True),
    "adam_beta2": (float, 0, 1, False, True),
    "adam_epsilon": (float, 0, None, True, False),
    "max_grad_norm": (float, 0, None, True, False),
    "prompt_probability": (float, 0, 1, False, False),
    "short_context_probability": (float, 0, 1, False, False),
    "short_context_timesteps": (int, 1, None, False, False),
    "short_context_prompt_tokens": (int, 0, None, False, False),
    "eval_episodes": (int, 1, None, False, False),
    "eval_samples_per_task": (int, 1, None, False, False),
    "eval_steps": (int, 1, None, False, False),
    "save_steps": (int, 1, None, False, False),
    "save_total_limit": (int, 1, None, False, False),
    "logging_steps": (int, 1, None, False, False),
    "max_minutes": (float, 0, None, True, False),
    "dataloader_num_workers": (int, 0, None, False, False),
    "seed": (int, 0, None, False, False),
}


# ---------------------------------------------------------------------------- learning rate
def paper_schedule(optimizer, warmup_steps: int, total_steps: int, peak: float, initial: float, final_ratio: float):
    """Linear warm-up from `initial` to `peak`, then cosine decay to `final_ratio * peak` at `total_steps`."""

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (initial + (peak - initial) * step / warmup_steps) / peak
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class GatoTrainer(Trainer):
    """Trainer with the paper's learning-rate schedule, and the policy's own held-out loss.

    `policy_sets` maps a task to its held-out samples and the id range of each action slot: every evaluation
    then also logs `eval_<task>_policy_loss` and `eval_<task>_policy_accuracy` (`policy_metrics`), beside
    Trainer's full-vocabulary `eval_<task>_loss`.

    `Trainer.push_to_hub` (and `save_model` with `push_to_hub=True`) upload the project's card, not transformers'
    generic one: `create_model_card` keeps the card in the output directory (pointed at the Hub repository) or writes
    the training card (`project_card`, from `manifests`, the training data's manifests by directory).
    """

    def __init__(self, *args, gato_config: TrainConfig, policy_sets: dict | None = None,
                 manifests: dict | None = None, **kwargs):
        self.gato_config = gato_config
        self.policy_sets = policy_sets or {}
        self.manifests = manifests or {}
        super().__init__(*args, **kwargs)
        # the policy windows are padded to their batch's longest, not to the context: a one-timestep window is a
        # few tokens, and padding never changes a causal model's outputs at the real positions
        self.policy_collator = (GatoDataCollator(self.processing_class) if isinstance(self.processing_class,
                                                                                      GatoProcessor)
                                else self.data_collator)

    def project_card(self) -> str:
        """The training card (`model_card`) for the run so far."""
        history = [h for h in self.state.log_history if "step" in h]
        parameters = sum(p.numel() for p in self.model.parameters())
        return model_card(self.gato_config, self.model.config, self.manifests, history, self.state.global_step,
                          parameters)

    def create_model_card(self, *args, **kwargs) -> None:
        """Called by `Trainer.push_to_hub` right before the upload of the output directory: keep its card (unless it is
        one of transformers' generated ones) or write the training card, then point it at the Hub repository."""
        if not self.is_world_process_zero():
            return
        output_dir = self.args.output_dir
        path = os.path.join(output_dir, "README.md")
        if not os.path.isfile(path) or is_generic_card(open(path, encoding="utf-8").read()):
            os.makedirs(output_dir, exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(self.project_card())
        if self.hub_model_id:
            prepare_card_for_push(output_dir, self.hub_model_id)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        metrics = super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        # Trainer evaluates a dict of held-out sets by calling `evaluate` once per set: add the policy metrics
        # once, at the outer call.
        if eval_dataset is None and metric_key_prefix == "eval" and self.policy_sets:
            logs = {}
            for task, (samples, ranges) in self.policy_sets.items():
                result = policy_metrics(self.model, self.policy_collator, samples, ranges,
                                        self.args.per_device_eval_batch_size)
                logs[f"eval_{task}_policy_loss"] = result["loss"]
                logs[f"eval_{task}_policy_accuracy"] = result["accuracy"]
                logs[f"eval_{task}_policy_tokens"] = result["tokens"]  # what the two rest on (BabyAI: a few)
            losses = [v for k, v in logs.items() if k.endswith("_policy_loss")]
            logs["eval_policy_loss"] = float(np.mean(losses))
            self.log(logs)
            metrics.update(logs)
        return metrics

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # The output layer only where a target is predicted: the same loss (tested), a fraction of the
        # vocabulary-projection FLOPs (in Meta-World episodes 4 tokens in 44 are targets).
        inputs = {**inputs, "target_logits_only": True}
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None:
            c = self.gato_config
            self.lr_scheduler = paper_schedule(
                optimizer if optimizer is not None else self.optimizer,
                c.warmup_steps, num_training_steps, c.learning_rate, c.initial_learning_rate,
                c.final_learning_rate_ratio,
            )
            self._created_lr_scheduler = True
        return self.lr_scheduler


# ---------------------------------------------------------------------------- data
def split_sources(data_dirs: list[str], weights: dict[str, float], eval_episodes: int):
    """Training sources (all but the last `eval_episodes` episodes of each task) and held-out episodes per task."""
    from datasets import load_from_disk

    train, held_out, manifests = [], {}, {}
    for directory in data_dirs:
        with open(os.path.join(directory, "manifest.json")) as f:
            manifest = json.load(f)
        manifests[directory] = manifest
        for task, info in manifest["tasks"].items():
            dataset = load_from_disk(os.path.join(directory, "episodes", task))
            keep = training_episode_count(len(dataset), eval_episodes)
            weight = weights.get(task, weights.get(info["domain"], 1.0))
            if weight > 0:
                train.append(Source(task, dataset.select(range(keep)), weight, "episodes"))
            if keep < len(dataset):
                held_out[task] = dataset.select(range(keep, len(dataset)))
        for kind in ("text", "captions", "vqa"):
            path = os.path.join(directory, kind)
            if os.path.isdir(path) and weights.get(kind, 1.0) > 0:
                dataset = load_from_disk(path)
                keep = training_row_count(len(dataset))  # 5% held out
                train.append(Source(kind, dataset.select(range(keep)), weights.get(kind, 1.0), "text"))
                if keep < len(dataset):
                    held_out[kind] = dataset.select(range(keep, len(dataset)))
    if not train:
        raise ValueError(f"no training data in {data_dirs}: expected directories written by `collect`.")
    return train, held_out, manifests


def evaluation_samples(processor: GatoProcessor, rows, context_length: int, is_episode: bool,
                       max_timesteps: int | None = None) -> list[dict]:
    """Deterministic held-out samples: consecutive whole-timestep windows of each episode (no prompt; at most
    `max_timesteps` timesteps each when given), or text/caption/VQA rows packed in order."""
    samples = []
    if is_episode:
        for index, row in enumerate(rows):
            episode = processor.tokenize_sample(row, index)
            starts, total = episode["timestep_starts"], len(episode["input_ids"])
            ends = np.append(starts[1:], total)
            begin = 0
            while begin < len(starts):
                fits = np.flatnonzero(ends[begin:] - starts[begin] <= context_length)
                if max_timesteps is not None:
                    fits = fits[fits < max_timesteps]
                last = begin + (int(fits[-1]) if len(fits) else 0)
                end_token = int(ends[last]) if len(fits) else int(starts[begin]) + context_length
                samples.append(_slice_sample(episode, int(starts[begin]), end_token))
                begin = last + 1
    else:
        current, used = [], 0
        for index, row in enumerate(rows):
            sample = processor.tokenize_sample(row, index)
            length = min(len(sample["input_ids"]), context_length)
            if used + length > context_length and current:
                samples.append(_concatenate(current))
                current, used = [], 0
            current.append(_slice_sample(sample, 0, length))
            used += length
        if current:
            samples.append(_concatenate(current))
    return samples


def evenly_spaced(samples: list[dict], count: int) -> list[dict]:
    """At most `count` of `samples`, evenly spaced from the first to the last (all of them when they are fewer)."""
    if len(samples) <= count:
        return samples
    return [samples[i] for i in np.linspace(0, len(samples) - 1, count).round().astype(int)]


ACTING_WINDOWS_PER_TASK = 256  # one-timestep held-out windows scored per task (a few tokens each)


def policy_samples(processor: GatoProcessor, rows, config: TrainConfig, windows: list[dict]) -> list[dict]:
    """The held-out windows the policy metrics score: those the agent acts on. A model trained on short-context
    samples acts on the current timestep alone (`evaluate`'s default, `trained_history_steps`), after the prompt
    `evaluate` gives it (the end of the task's last held-out episode, `short_context_prompt_tokens`; none when 0),
    so it is scored on one-timestep windows (evenly spaced, at most `ACTING_WINDOWS_PER_TASK`), each after that
    prompt; any other model on the whole-timestep `windows` of the full-vocabulary evaluation."""
    if config.short_context_probability <= 0:
        return windows
    samples = evenly_spaced(evaluation_samples(processor, rows, config.context_length, True, max_timesteps=1),
                            ACTING_WINDOWS_PER_TASK)
    if config.short_context_prompt_tokens:
        prompt = _prompt_sample(processor, rows[len(rows) - 1], config.short_context_prompt_tokens)
        samples = [_concatenate([prompt, sample]) for sample in samples]
    return samples


def action_slot_ranges(action_space: dict | None, processor: GatoProcessor) -> list[tuple[int, int]] | None:
    """The id range `[low, high)` of each action slot, from `manifest.json`'s `action_space` description (what the
    agent samples from: `[0, n)` for a discrete slot, the continuous bins for a Box dimension); None when the
    manifest has no description."""
    if not action_space:
        return None
    return processor.action_token_ranges(action_space_from_description(action_space))


def _inferred_ranges(samples: list[dict], processor: GatoProcessor) -> list[tuple[int, int]]:
    ids = np.concatenate([np.asarray(s["input_ids"])[np.asarray(s["action_mask"], bool)] for s in samples])
    if len(ids) and ids.min() >= processor.continuous_offset:
        return [(processor.continuous_offset, processor.continuous_offset + processor.num_bins)]
    return [(0, processor.num_discrete_values)]


@torch.no_grad()
def policy_metrics(model: GatoForCausalModeling, collator, samples: list[dict], ranges: list[tuple[int, int]],
                   batch_size: int = 8) -> dict[str, float]:
    """The policy's loss: cross-entropy and accuracy of each action token among its slot's valid ids only.

    This is what the agent acts on (it samples each action token among `ranges[slot]`), unlike the full-vocabulary
    loss, which also pays for mass on text ids the agent never samples. `samples` are whole-timestep windows (as
    `evaluation_samples` makes them), so the k-th action token of a sample fills slot `k % len(ranges)`.
    Returns `{"loss", "accuracy", "tokens"}`.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total_loss, correct, count = 0.0, 0, 0
    names = {"input_ids", "attention_mask", *GATO_TOKEN_INPUTS}
    try:
        for begin in range(0, len(samples), batch_size):
            chunk = samples[begin:begin + batch_size]
            batch = collator(chunk)
            inputs = {k: v.to(device) for k, v in batch.items() if k in names}
            hidden = model.model(**inputs, use_cache=False).last_hidden_state  # (batch, seq, hidden)
            for row, sample in enumerate(chunk):
                length = int(inputs["attention_mask"][row].sum())
                positions = np.flatnonzero(np.asarray(sample["action_mask"])[:length])
                slots = np.arange(len(positions)) % len(ranges)
                scored = positions > 0
                if "loss_mask" in sample:  # a prompt's actions condition, they are not scored
                    scored &= np.asarray(sample["loss_mask"], bool)[positions]
                positions, slots = positions[scored], slots[scored]
                if not len(positions):
                    continue
                targets = inputs["input_ids"][row, positions]
                states = hidden[row, positions - 1]  # position t - 1 predicts token t
                for which, low, logits in slot_logits(model, states, slots, ranges):
                    chosen = torch.as_tensor(which, device=device)
                    local = (targets[chosen] - low).clamp(0, logits.shape[-1] - 1)
                    valid = (targets[chosen] >= low) & (targets[chosen] < low + logits.shape[-1])
                    losses = torch.logsumexp(logits, -1) - logits.gather(1, local[:, None])[:, 0]
                    total_loss += float(losses[valid].sum())
                    correct += int(((logits.argmax(-1) == local) & valid).sum())
                    count += int(valid.sum())
    finally:
        model.train(was_training)
    if count == 0:
        return {"loss": float("nan"), "accuracy": float("nan"), "tokens": 0}
    return {"loss": total_loss / count, "accuracy": correct / count, "tokens": count}


# ---------------------------------------------------------------------------- callbacks and reports
class TimeBudgetCallback(TrainerCallback):
    """Stops training once `minutes` of wall-clock time are spent (the model is then saved as usual)."""

    def __init__(self, minutes: float):
        import time

        self.deadline = time.time() + 60 * minutes
        self.clock = time.time

    def on_step_end(self, args, state, control, **kwargs):
        if self.clock() >= self.deadline:
            control.should_training_stop = True
        return control


class TrainingConfigCallback(TrainerCallback):
    """Writes the run's `training_config.json` into the output directory when training starts and into every
    checkpoint as it is saved: a checkpoint, also of a run still going or killed, is played by `evaluate` and `act`
    with the settings it was trained with (the acting history, the held-out episodes), not the paper's defaults."""

    def __init__(self, config: TrainConfig):
        self.settings = asdict(config)

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            os.makedirs(args.output_dir, exist_ok=True)
            write_json_atomic(os.path.join(args.output_dir, "training_config.json"), self.settings)

    def on_save(self, args, state, control, **kwargs):
        checkpoint = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if state.is_world_process_zero and os.path.isdir(checkpoint):
            write_json_atomic(os.path.join(checkpoint, "training_config.json"), self.settings)


class LossCurveCallback(TrainerCallback):
    """Keeps the logged losses and writes `loss_curve.png` and `losses.json` into the output directory."""

    def __init__(self, output_dir: str):
        self.output_dir = output_dir
        self.history: list[dict[str, float]] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            self.history.append({"step": state.global_step, **{k: v for k, v in logs.items() if isinstance(v, (int, float))}})

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.history = [h for h in state.log_history if "step" in h]
            write_loss_curve(self.history, self.output_dir)


def write_loss_curve(history: list[dict[str, float]], output_dir: str) -> str:
    """`loss_curve.png` (left: train and held-out full-vocabulary loss; right: the held-out policy loss, restricted
    to each action slot's valid ids, and its accuracy) and `losses.json` (every logged value)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(output_dir, exist_ok=True)
    figure, (axis, policy_axis) = plt.subplots(1, 2, figsize=(13, 4.5))
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    if train:
        axis.plot(*zip(*train), label="train loss", linewidth=2)
    eval_keys = sorted({k for h in history for k in h if k.startswith("eval_") and k.endswith("_loss")
                        and not k.endswith("policy_loss")})
    colors = plt.get_cmap("tab20")
    for index, key in enumerate(eval_keys):
        points = [(h["step"], h[key]) for h in history if key in h]
        axis.plot(*zip(*points), marker="o", linestyle="--", color=colors(index % 20),
                  label=key.removeprefix("eval_").removesuffix("_loss"))
    axis.set_xlabel("step")
    axis.set_ylabel("cross-entropy over the whole vocabulary")
    axis.set_title("full-vocabulary loss (text and action tokens)")
    axis.grid(alpha=0.3)
    if train or eval_keys:
        axis.legend(fontsize=7, ncol=2)
    policy_keys = sorted({k for h in history for k in h if k.endswith("_policy_loss") and k != "eval_policy_loss"})
    accuracy_axis = policy_axis.twinx()
    for index, key in enumerate(policy_keys):
        task = key.removeprefix("eval_").removesuffix("_policy_loss")
        points = [(h["step"], h[key]) for h in history if key in h]
        policy_axis.plot(*zip(*points), marker="o", color=colors(index % 20), label=task)
        accuracy = [(h["step"], h[f"eval_{task}_policy_accuracy"]) for h in history if f"eval_{task}_policy_accuracy" in h]
        if accuracy:
            accuracy_axis.plot(*zip(*accuracy), linestyle=":", color=colors(index % 20))
    policy_axis.set_xlabel("step")
    policy_axis.set_ylabel("cross-entropy among the slot's valid ids (solid)")
    accuracy_axis.set_ylabel("accuracy (dotted)")
    accuracy_axis.set_ylim(0, 1)
    policy_axis.set_title("held-out policy loss: what the agent acts on")
    policy_axis.grid(alpha=0.3)
    if policy_keys:
        policy_axis.legend(fontsize=7, ncol=2)
    path = os.path.join(output_dir, "loss_curve.png")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    with open(os.path.join(output_dir, "losses.json"), "w") as f:
        json.dump(history, f, indent=1)
    return path


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def model_card(config: TrainConfig, model_config: GatoConfig, manifests: dict, history: list[dict], steps: int,
               parameters: int) -> str:
    train_losses = [h["loss"] for h in history if "loss" in h]
    last_eval, last_policy, last_accuracy = {}, {}, {}
    for h in history:
        for key, value in h.items():
            if key.endswith("_policy_loss") and key != "eval_policy_loss":
                last_policy[key.removeprefix("eval_").removesuffix("_policy_loss")] = value
            elif key.endswith("_policy_accuracy"):
                last_accuracy[key.removeprefix("eval_").removesuffix("_policy_accuracy")] = value
            elif key.startswith("eval_") and key.endswith("_loss") and key != "eval_loss":
                last_eval[key.removeprefix("eval_").removesuffix("_loss")] = value
    lines = [
        *card_front_matter(),
        "A generalist agent after Reed et al., *A Generalist Agent* (2022), trained with "
        "`python -m modeling_gato train` (modeling_gato). Load it with "
        "`AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)` and "
        "`AutoProcessor.from_pretrained(path, trust_remote_code=True)`.",
        "",
        *usage_snippet(config.hub_model_id or config.output_dir),
        "## Model",
        "",
        f"- {parameters / 1e6:.1f}M parameters: {model_config.num_hidden_layers} layers, width {model_config.hidden_size}, "
        f"{model_config.num_attention_heads} heads of {model_config.head_dim}, FFN {model_config.intermediate_size}, "
        f"context {model_config.max_position_embeddings}.",
        "",
        "## Training data",
        "",
        "| task | domain | episodes | steps | expert return | random return |",
        "|---|---|---|---|---|---|",
    ]
    for manifest in manifests.values():
        for task, info in manifest["tasks"].items():
            score = manifest.get("scores", {}).get(task, {})
            expert = score.get("expert", {}).get("mean_return")
            random = score.get("random", {}).get("mean_return")
            lines.append(f"| {task} | {info['domain']} | {info['episodes']} | {info['steps']} | {fmt(expert)} | {fmt(random)} |")
        for kind in ("text", "captions", "vqa"):
            if kind in manifest:
                lines.append(f"| {kind} | vision/language | {manifest[kind]['rows']} rows | | | |")
    short_prompt = (f", each after the last timesteps of a demonstration that fit in {config.short_context_prompt_tokens} "
                    f"tokens" if config.short_context_prompt_tokens else "")
    lines += [
        "",
        "## Training",
        "",
        f"- {steps} optimizer steps, batch {config.batch_size} x {config.gradient_accumulation_steps} accumulation "
        f"sequences of {config.context_length} tokens, AdamW ({config.adam_beta1}, {config.adam_beta2}, eps "
        f"{config.adam_epsilon}), weight decay {config.weight_decay}, clip {config.max_grad_norm}, learning rate "
        f"{config.initial_learning_rate:g} -> {config.learning_rate:g} over {config.warmup_steps} steps then cosine "
        f"to {config.learning_rate * config.final_learning_rate_ratio:g}; prompt probability {config.prompt_probability}; "
        f"short-context samples {config.short_context_probability:g} (windows of 1-{config.short_context_timesteps} "
        f"timesteps{short_prompt}); continuous embedding `{model_config.continuous_embedding}`; "
        f"{'bf16 autocast' if config.bf16 else 'float32'}.",
        f"- Train loss: first logged {train_losses[0]:.4f}, last logged {train_losses[-1]:.4f}."
        if train_losses else "- No train loss was logged.",
        "",
        "## Held-out loss per task (last evaluation)",
        "",
        "The policy loss and accuracy score each action token among its slot's valid ids only (what the agent "
        "samples from); the full-vocabulary loss also pays for probability on ids the agent never samples.",
        "",
        "| task | policy loss | policy accuracy | full-vocabulary loss |",
        "|---|---|---|---|",
    ]
    lines += [f"| {task} | {fmt(last_policy.get(task))} | {fmt(last_accuracy.get(task))} | {loss:.4f} |"
              for task, loss in sorted(last_eval.items())] or ["| (none) | | | |"]
    lines += ["", "![loss curve](loss_curve.png)", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the run
def latest_complete_checkpoint(output_dir: str) -> str | None:
    """The newest `checkpoint-<step>` that holds every file a resume needs (a killed save leaves a partial one)."""
    if not os.path.isdir(output_dir):
        return None
    candidates = []
    for name in os.listdir(output_dir):
        match = re.fullmatch(r"checkpoint-(\d+)", name)
        path = os.path.join(output_dir, name)
        if match and all(os.path.exists(os.path.join(path, f)) for f in CHECKPOINT_FILES):
            if any(f.startswith("rng_state") for f in os.listdir(path)):
                candidates.append((int(match.group(1)), path))
    return max(candidates)[1] if candidates else None


def build_model(config: TrainConfig) -> GatoForCausalModeling:
    if config.init_from:
        return GatoForCausalModeling.from_pretrained(config.init_from)
    overrides = {"continuous_embedding": config.continuous_embedding, **config.model_overrides}
    if config.variant == "tiny":
        model_config = GatoConfig(**{**TINY, "max_position_embeddings": config.context_length, **overrides})
    elif config.variant in ("small", "baseline", "large"):
        model_config = getattr(GatoConfig, config.variant)(**overrides)
    else:
        raise ValueError(f"variant={config.variant!r} is invalid: expected tiny, small, baseline or large.")
    if model_config.max_position_embeddings < config.context_length:
        raise ValueError(
            f"context_length={config.context_length} exceeds the model's max_position_embeddings="
            f"{model_config.max_position_embeddings}."
        )
    return GatoForCausalModeling(model_config)


def _warn_if_bf16_is_slow(hidden_size: int) -> None:
    """bf16 was asked for on the CPU: say so when this CPU runs it slower than float32 (no native bf16)."""
    from .precision import bf16_autocast_speedup, describe_speedup

    speedup = bf16_autocast_speedup(hidden_size)
    if speedup < 1:
        print(f"warning: --bf16 on this CPU: bf16 autocast measured {describe_speedup(speedup)} than float32 here "
              "(no native bf16 matrix products); --no-bf16 trains in float32.")


def train(config: TrainConfig) -> dict[str, Any]:
    """Run training; returns a summary (steps, losses, output directory)."""
    config.check()
    torch.manual_seed(config.seed)
    processor = GatoProcessor.from_pretrained(config.init_from) if config.init_from else GatoProcessor()
    model = build_model(config)
    train_sources, held_out, manifests = split_sources(config.data, config.weights, config.eval_episodes)
    builder = GatoSequenceBuilder(
        processor, train_sources, context_length=config.context_length,
        prompt_probability=config.prompt_probability, seed=config.seed,
        short_context_probability=config.short_context_probability,
        short_context_timesteps=config.short_context_timesteps,
        short_context_prompt_tokens=config.short_context_prompt_tokens,
    )
    action_spaces = {task: info.get("action_space") for manifest in manifests.values()
                     for task, info in manifest["tasks"].items()}
    eval_sets, policy_sets = {}, {}
    for name, rows in held_out.items():
        samples = evenly_spaced(  # a fixed, bounded held-out set
            evaluation_samples(processor, rows, config.context_length, name not in ("text", "captions", "vqa")),
            config.eval_samples_per_task)
        if samples:
            eval_sets[name] = samples
            if name in action_spaces:
                # Without a described space: continuous slots take the bins, discrete ones the whole discrete range.
                ranges = action_slot_ranges(action_spaces[name], processor) or _inferred_ranges(samples, processor)
                policy_sets[name] = (policy_samples(processor, rows, config, samples), ranges)
    use_cpu = not torch.cuda.is_available()
    if config.bf16 and use_cpu:
        _warn_if_bf16_is_slow(model.config.hidden_size)
    args = TrainingArguments(**_supported_arguments(
        output_dir=config.output_dir,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        adam_beta1=config.adam_beta1,
        adam_beta2=config.adam_beta2,
        adam_epsilon=config.adam_epsilon,
        max_grad_norm=config.max_grad_norm,
        logging_steps=config.logging_steps,
        eval_strategy="steps" if eval_sets else "no",
        eval_steps=config.eval_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        bf16=config.bf16,
        gradient_checkpointing=config.gradient_checkpointing,
        ddp_find_unused_parameters=True if config.gradient_checkpointing else None,
        fsdp=config.fsdp,
        remove_unused_columns=False,
        prediction_loss_only=True,
        report_to=[],
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=use_cpu,
        # Each worker draws its own stream (the builder seeds by worker id) and keeps its own token cache.
        dataloader_num_workers=config.dataloader_num_workers,
        push_to_hub=config.push_to_hub,
        hub_model_id=config.hub_model_id,
        save_safetensors=True,
        # Every process draws its own samples from the builder (seeded by rank): nothing to dispatch.
        accelerator_config={"dispatch_batches": False},
    ))
    loss_curve = LossCurveCallback(config.output_dir)
    trainer = GatoTrainer(
        model=model,
        args=args,
        train_dataset=builder,
        eval_dataset=eval_sets or None,
        data_collator=GatoDataCollator(processor, padding="max_length", max_length=config.context_length),
        processing_class=processor,
        callbacks=[loss_curve, TrainingConfigCallback(config)]
        + ([TimeBudgetCallback(config.max_minutes)] if config.max_minutes else []),
        gato_config=config,
        policy_sets=policy_sets,
        manifests=manifests,
    )
    resume = latest_complete_checkpoint(config.output_dir) if config.resume else None
    if config.resume and resume is None:
        print(f"--resume: no complete checkpoint in {config.output_dir}; starting from scratch.")
    result = trainer.train(resume_from_checkpoint=resume)
    evaluated = [h["step"] for h in trainer.state.log_history
                 if any(k.startswith("eval_") and k.endswith("_loss") for k in h)]
    if eval_sets and (not evaluated or evaluated[-1] != trainer.state.global_step):
        # the held-out losses of the model as saved, also when the time budget (or max_steps) ended the run between
        # two evaluations: the loss curve, `losses.json` and the learning curve always end at the last step
        trainer.evaluate()
    history = [h for h in trainer.state.log_history if "step" in h]
    if trainer.is_world_process_zero():
        trainer.save_model(config.output_dir)
        write_loss_curve(history, config.output_dir)
        with open(os.path.join(config.output_dir, "README.md"), "w") as f:
            f.write(trainer.project_card())
    world = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
    os.makedirs(os.path.join(config.output_dir, "ranks"), exist_ok=True)
    with open(os.path.join(config.output_dir, "ranks", f"rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, "world_size": world, "global_step": trainer.state.global_step,
                   "parameter_checksum": checksum, "train_loss": result.training_loss}, f)
    if config.push_to_hub and trainer.is_world_process_zero():
        trainer.push_to_hub()
    return {"global_step": trainer.state.global_step, "train_loss": result.training_loss, "history": history,
            "resumed_from": resume, "world_size": world}


def _supported_arguments(**kwargs) -> dict[str, Any]:
    """Drop flags this transformers version no longer has (e.g. `save_safetensors`: always on in 5.x)."""
    known = {f.name for f in fields(TrainingArguments)}
    if "activation_checkpointing" in known and "gradient_checkpointing" in kwargs:  # renamed in 5.24
        kwargs["activation_checkpointing"] = kwargs.pop("gradient_checkpointing")
    return {k: v for k, v in kwargs.items() if k in known}


# ---------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="a YAML or JSON file of settings (flags given here override it)")
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if f.name == "data":
            parser.add_argument(flag, nargs="+", default=None, help="directories written by `collect`")
        elif f.name in ("weights", "model_overrides"):
            parser.add_argument(flag, type=json.loads, default=None,
                                help='JSON, e.g. \'{"metaworld": 2, "text": 0.5}\'' if f.name == "weights"
                                else 'JSON GatoConfig fields, e.g. \'{"num_hidden_layers": 4}\'')
        elif isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            # A None default says nothing of the type: read it from the annotation ("float | None" -> float).
            annotation = str(f.type)
            kind = type(default) if default is not None else (
                float if "float" in annotation else int if "int" in annotation else str)
            parser.add_argument(flag, type=kind, default=None, help=f"default: {default}")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = TrainConfig.from_file(args.config) if getattr(args, "config", None) else {}
    for f in fields(TrainConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            values[f.name] = value
    return TrainConfig(**values)


def main(args: argparse.Namespace) -> int:
    summary = train(config_from_args(args))
    if int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps({k: v for k, v in summary.items() if k != "history"}))
    return 0
