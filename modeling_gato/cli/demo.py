"""`python -m modeling_gato demo`: the main job.

The full demo collects expert data from every environment, trains one small generalist on all of it
(environments, text, captions, VQA) within a wall-clock budget (60 minutes by default on this 2-core CPU),
evaluates it on every task, and writes a report (tables, plots, sample captions and text completions) and a
Hub-ready model directory. `--quick` runs the same path with tiny settings (for the test suite);
`--core` only walks through the core (model, processor, forward, generate, remote-code reload).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

from ..configuration_gato import GatoConfig
from ..modeling_gato import GatoForCausalModeling
from ..processing_gato import GatoProcessor
from ..training.variants import variant_table


def sample_episode(num_steps: int = 3, seed: int = 0) -> dict:
    """An episode in the SPEC columns: a mission, a 56x56 RGB view (padded to 64x64), a 2-value discrete
    observation, a 5-value continuous observation and a 2-value continuous action per step."""
    rng = np.random.default_rng(seed)
    images = []
    for t in range(num_steps):
        image = np.zeros((56, 56, 3), np.uint8)
        image[8 * t : 8 * t + 16, 20:36, 0] = 255  # a red square that moves down
        images.append(image)
    return {
        "text_observations": ["go to the red ball"] * num_steps,
        "image_observations": images,
        "discrete_observations": rng.integers(0, 4, size=(num_steps, 2)).tolist(),
        "continuous_observations": rng.normal(0, 2, size=(num_steps, 5)).round(3).tolist(),
        "continuous_actions": rng.uniform(-1, 1, size=(num_steps, 2)).round(3).tolist(),
        "task": "demo",
    }


def build_config(variant: str) -> GatoConfig:
    if variant == "tiny":
        return GatoConfig(
            hidden_size=128, num_hidden_layers=2, num_attention_heads=4, head_dim=32, intermediate_size=512
        )
    return getattr(GatoConfig, variant)()


def run_core_demo(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    processor = GatoProcessor()
    config = build_config(args.variant)
    model = GatoForCausalModeling(config).eval()
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {args.variant} variant, {params / 1e6:.2f}M parameters, attention={config._attn_implementation}")

    episode = sample_episode(seed=args.seed)
    batch = processor(episodes=episode)
    ids, kinds = batch["input_ids"][0], []
    for i in range(ids.shape[0]):
        if batch["patch_mask"][0, i]:
            kinds.append("P")
        elif ids[i] == processor.separator_token_id:
            kinds.append("|")
        elif batch["action_mask"][0, i]:
            kinds.append("A")
        else:
            kinds.append("o")
    steps = batch["local_positions"][0].eq(0).sum().item()
    print(f"episode: {steps} timesteps -> {ids.shape[0]} tokens "
          f"({int(batch['patch_mask'].sum())} image patches, {int(batch['loss_mask'].sum())} loss targets)")
    print("layout (P patch, o observation token, | separator, A action):")
    print("  " + "".join(kinds))
    print(f"  first timestep ids: {ids[: int((ids == processor.separator_token_id).nonzero()[0]) + 3].tolist()}")

    with torch.no_grad():
        start = time.perf_counter()
        out = model(**batch)
        elapsed = time.perf_counter() - start
    print(f"forward: logits {tuple(out.logits.shape)}, masked loss {out.loss.item():.4f} "
          f"(log(vocab) = {np.log(config.vocab_size):.4f} for an untrained model), {elapsed * 1000:.1f} ms")
    actions = out.logits[0, :-1][batch["loss_mask"][0, 1:]].argmax(-1)
    print(f"greedy action tokens at the action slots: {actions.tolist()}")

    prompt = processor(text="The agent picks up the")
    with torch.no_grad():
        generated = model.generate(**prompt, max_new_tokens=args.max_new_tokens, do_sample=False)
    new = generated[0, prompt["input_ids"].shape[1]:]
    print(f"generate: prompt {prompt['input_ids'][0].tolist()} + {new.tolist()} -> "
          f"{processor.decode(generated[0])!r} (random weights: the words are arbitrary)")

    if not args.quick:
        os.makedirs(args.output_dir, exist_ok=True)
        model.save_pretrained(args.output_dir)
        processor.save_pretrained(args.output_dir)
        torch.save({k: v for k, v in batch.items()}, os.path.join(args.output_dir, "demo_batch.pt"))
        reference = out.logits
        check = (
            "import sys, torch, json\n"
            "from transformers import AutoModel\n"
            "d = sys.argv[1]\n"
            "m = AutoModel.from_pretrained(d, trust_remote_code=True).eval()\n"
            "b = torch.load(d + '/demo_batch.pt')\n"
            "with torch.no_grad(): out = m(**b)\n"
            "torch.save(out.logits, d + '/reloaded_logits.pt')\n"
            "print(json.dumps({'class': type(m).__name__, 'module': type(m).__module__}))\n"
        )
        env = dict(os.environ, PYTHONPATH="")
        result = subprocess.run(
            [sys.executable, "-c", check, os.path.abspath(args.output_dir)],
            capture_output=True, text=True, cwd="/", env=env, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"reloading {args.output_dir} in a fresh process failed:\n{result.stderr[-2000:]}")
        loaded = json.loads(result.stdout.strip().splitlines()[-1])
        reloaded = torch.load(os.path.join(args.output_dir, "reloaded_logits.pt"))
        diff = (reloaded - reference).abs().max().item()
        print(f"saved to {args.output_dir}; AutoModel.from_pretrained(trust_remote_code=True) in a fresh process "
              f"gave {loaded['class']} from {loaded['module']}, max |logit difference| = {diff:.2e}")

    print("\nparameter counts of the paper's variants (plain GELU FFN, tied embeddings):")
    print(variant_table())


# ---------------------------------------------------------------------------- the full demo
DEMO_MODEL = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=8, head_dim=32, intermediate_size=1024)
QUICK_MODEL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, head_dim=16, intermediate_size=128)
# Text rows make every token a target, episodes only their actions (1 token in 6 to 44): at equal sample weights text
# gets most of the gradient. Weighted down, control gets the larger share (the paper's mixture is ~85% control);
# BabyAI, with one target in ~25 tokens, the fewest targets of the control tasks, is weighted up.
# Meta-World, cut to its ~70 useful steps an episode (below), is weighted up too: 2.5 gives it ~45% of the samples
# (BabyAI ~37%), and reach went from 7% to 32% of expert with the rest level (docs/demo/metaworld_c200_run).
DEMO_WEIGHTS = {"babyai": 2.0, "metaworld": 2.5, "text": 0.1, "captions": 0.5, "vqa": 0.25}
QUICK_TASKS = ["BabyAI-GoToRedBallGrey-v0", "metaworld-reach-v3", "CartPole-v1"]
# InvertedPendulum's PPO expert holds the pole so still that its clean episodes cover one point of the state space;
# with noise on its executed actions the same 40 episodes teach recoveries (alone: 3% -> 100% of expert, README).
# Meta-World's scripted experts are collected clean: with noise 0.1, reach alone fell from 49% to 19%, and reach in
# the three-task mixture at the demo's size from 31% to 7% (one seed each; docs/demo/action_noise_run).
DEMO_ACTION_NOISE = {"mujoco": 0.1}
# A BabyAI expert episode is about 6 steps against 500 for Meta-World and up to 1000 for the MuJoCo and classic tasks:
# at 40 episodes each level has ~230 steps (~6K tokens), which the generalist sees ~200 times over. 1000 episodes
# (~5.7K steps a level) take seconds to collect; in the generalist BabyAI success went from 60/20/5% to 80/25/15% on 20
# episodes per level (README, "More BabyAI episodes"; docs/demo/babyai_episodes_run).
# Meta-World's scripted experts succeed within 30-70 of their 500 steps and then hold still: a one-timestep model fed
# whole episodes learns the hold (~0 on every action dimension, reach 7%). 200 episodes a task replace 40 whole ones:
# on 40 cut episodes the held-out reach loss rose after 300 steps of Meta-World alone (overfitting), on 200 it kept
# falling. Each ends 60 steps after the env reports success: with 20, the generalist reached the goal and drifted
# off it (reach 21%, 3 of 5 successes); with 60, training seed 1 stays on it (69%, 5 of 5) but seed 2 scores 9%, so
# the gain is one seed against one; 1-NN on the same data gains too (docs/demo/metaworld_cut_run,
# docs/demo/metaworld_c200_run, docs/demo/metaworld_hold_run).
DEMO_TASK_EPISODES = {"babyai": 1000, "metaworld": 200}
DEMO_STEPS_AFTER_SUCCESS = {"metaworld": 60}


def _episode_cut(steps_after_success: int | None) -> str:
    return ("whole episodes" if steps_after_success is None
            else f"episodes ended {steps_after_success} steps after success")


def collection_differences(manifest: dict, config) -> list[str]:
    """The tasks of a reused `collect` manifest collected otherwise than `config` (a `CollectConfig`) would collect
    them now: other recorded `action_noise` (discrete-action tasks always 0; none recorded counts as 0), other
    `action_epsilon` (continuous-action tasks always 0; none recorded counts as 0), other `steps_after_success`
    (none recorded: whole episodes) or other episode counts
    (`CollectConfig.episodes_for`), one line each."""
    from ..envs.tasks import TASKS

    lines = []
    for task, info in manifest.get("tasks", {}).items():
        if task not in TASKS:
            continue
        box = info.get("action_space", {}).get("type") == "Box"
        wanted = config.noise_for(TASKS[task]) if box else 0.0
        recorded = float(info.get("action_noise", 0.0))
        if recorded != wanted:
            lines.append(f"{task}: collected with action noise {recorded:g}, the demo collects with {wanted:g}")
        wanted = config.epsilon_for(TASKS[task]) if info.get("action_space", {}).get("type") == "Discrete" else 0.0
        recorded = float(info.get("action_epsilon", 0.0))
        if recorded != wanted:
            lines.append(f"{task}: collected with random actions at probability {recorded:g}, the demo collects "
                         f"with {wanted:g}")
        wanted, recorded = config.steps_after_success_for(TASKS[task]), info.get("steps_after_success")
        if recorded != wanted:
            lines.append(f"{task}: collected with {_episode_cut(recorded)}, the demo collects {_episode_cut(wanted)}")
        episodes = config.episodes_for(TASKS[task])
        if "episodes" in info and info["episodes"] != episodes:
            lines.append(f"{task}: {info['episodes']} episodes collected, the demo collects {episodes}")
    return lines


def training_batches(config, processor, data_dir: str, seed: int):
    """Collated training batches of `config`'s mixture drawn from `data_dir`, as `train` builds them (without the
    held-out episodes): the sequence builder, then the collator padding to the context."""
    from ..data.collator import GatoDataCollator
    from ..data.sequences import GatoSequenceBuilder
    from ..training.train import split_sources

    sources, _, _ = split_sources([data_dir], config.weights, config.eval_episodes)
    builder = iter(GatoSequenceBuilder(processor, sources, context_length=config.context_length, seed=seed,
                                       short_context_probability=config.short_context_probability,
                                       short_context_timesteps=config.short_context_timesteps,
                                       short_context_prompt_tokens=config.short_context_prompt_tokens))
    collator = GatoDataCollator(processor, padding="max_length", max_length=config.context_length)
    while True:
        yield collator([next(builder) for _ in range(config.batch_size)])


def _calibrate_step_seconds(config, processor, data_dir: str, steps: int = 8) -> float:
    """Seconds per optimizer step of this model and batch on this machine: the median of a few real steps after one
    warm-up. Steps vary with the batch's content (1.7-3.8 s on a 2-core AVX2 CPU, float32, 2026-12-03), so 8, not
    3: one 3-step calibration there measured 4.9 s (fresh ones 2.7-3.0 s; the outlier's cause not found) where
    training then ran 2.9 s a step and used 24 of its 45 minutes."""
    from ..training.train import build_model

    batches = training_batches(config, processor, data_dir, seed=123)
    model = build_model(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    timings = []
    for _ in range(steps + 1):
        batch = next(batches)
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):  # as Trainer runs it
            loss = model(**batch, target_logits_only=True).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        timings.append(time.perf_counter() - start)
    return float(np.median(timings[1:]))


def run_full_demo(args: argparse.Namespace) -> None:
    from ..data.collect import CollectConfig, collect, score_table
    from ..evaluation.evaluate import evaluate, results_table
    from ..training.train import TrainConfig, train

    started = time.time()
    if args.minutes is None:
        args.minutes = 3.0 if args.quick else 60.0
    out = os.path.abspath(args.output_dir)
    os.makedirs(out, exist_ok=True)
    quick = args.quick
    torch.manual_seed(args.seed)
    processor = GatoProcessor()
    timings = {}

    # 1. data
    data_dir = args.data or os.path.join(out, "data")
    collection = CollectConfig(
        tasks=QUICK_TASKS if quick else None, episodes=2 if quick else args.episodes, score_episodes=2 if quick else 10,
        seed=args.seed, text_paragraphs=40 if quick else 2000, captions_per_task=8 if quick else 200,
        cache_dir=args.expert_cache, overwrite=True,
        action_noise=DEMO_ACTION_NOISE if args.action_noise is None else args.action_noise,
        action_epsilon=args.action_epsilon,
        steps_after_success=None if quick else DEMO_STEPS_AFTER_SUCCESS if args.steps_after_success is None
        else args.steps_after_success,
        task_episodes=None if quick else DEMO_TASK_EPISODES if args.task_episodes is None else args.task_episodes)
    reused = args.data is None and os.path.exists(os.path.join(data_dir, "manifest.json")) and not args.recollect
    if reused:
        print(f"[1/4] reusing the collected data in {data_dir} (--recollect to collect again)")
    elif args.data is None:
        print(f"[1/4] collecting expert episodes into {data_dir}")
        collect(data_dir, collection)
    timings["collect"] = time.time() - started
    with open(os.path.join(data_dir, "manifest.json")) as f:
        manifest = json.load(f)
    for line in collection_differences(manifest, collection) if reused else ():
        print(f"      note: {line} (--recollect to collect it again)")
    print(score_table(manifest["scores"]))

    # 2. training, sized to the time budget
    context = 128 if quick else 1024
    # bf16 autocast where this machine runs it faster (1.2-2.5x on CPUs with native bf16), float32 where it does not
    # (a CPU with AVX2 only ran the demo's training step 18x slower in bf16): measured, `training.precision`.
    bf16, precision_note = (False, "float32 (--quick)") if quick else _measured_precision(DEMO_MODEL["hidden_size"])
    print(f"      precision: {precision_note}")
    # The small-budget recipe (TrainConfig's defaults: value-aware continuous embeddings, learning rate 1e-3 after a
    # short warm-up) with bf16 autocast where it pays and control weighted over text, and 90% of the episode samples
    # packed from one-timestep windows, the way the agent acts (TrainConfig's default: half, of 1-4 timesteps). In the
    # 60-minute generalist that reached CartPole 96-100% (default 77%), InvertedPendulum 100% on noisy data and, with
    # 1000 BabyAI episodes a level, 3 tasks of 8 at >= 50% of expert (README, "The demo's recipe").
    config = TrainConfig(
        data=[data_dir], output_dir=os.path.join(out, "model"), variant="tiny",
        model_overrides={**(QUICK_MODEL if quick else DEMO_MODEL), "max_position_embeddings": context},
        context_length=context, batch_size=2 if quick else 4, warmup_steps=2 if quick else 50,
        eval_episodes=1, eval_samples_per_task=2 if quick else 8, bf16=bf16,
        logging_steps=2 if quick else 20, save_total_limit=1 if quick else 4, seed=args.seed,
        weights={**DEMO_WEIGHTS, **_weights(args)}, short_context_probability=0.9, short_context_timesteps=1,
    )
    elapsed = (time.time() - started) / 60
    evaluation_minutes = 1 if quick else 15  # model, random, expert and 1-NN on every task, offline prediction
    train_minutes = max(0.5, args.minutes - elapsed - evaluation_minutes)
    step_seconds = _calibrate_step_seconds(config, processor, data_dir)
    config.max_steps = args.max_steps or max(4, int(train_minutes * 60 / step_seconds * 0.9))
    config.max_minutes = train_minutes
    config.eval_steps = max(1, config.max_steps // 4)
    config.save_steps = max(1, config.max_steps // 4)
    print(f"[2/4] training a {_describe(config)} model for {config.max_steps} steps "
          f"(~{step_seconds:.2f} s/step measured, budget {train_minutes:.1f} min) into {config.output_dir}")
    summary = train(config)
    timings["train"] = time.time() - started - timings["collect"]

    # 3. evaluation
    model = GatoForCausalModeling.from_pretrained(config.output_dir).eval()
    print(f"[3/4] evaluating on every task beside random, expert and 1-NN ({2 if quick else args.eval_episodes} episodes each)")
    episodes = 2 if quick else args.eval_episodes
    results = evaluate(model, processor, data_dir, os.path.join(out, "eval"), episodes=episodes, seed=1000,
                       env_seed=args.seed + 1, max_episode_steps=20 if quick else None, num_envs=min(episodes, 8),
                       videos=0 if quick else 1, model_dir=config.output_dir, expert_cache=args.expert_cache,
                       fresh=True)  # the model was just trained: a journal of an earlier demo run is stale
    timings["evaluate"] = time.time() - started - timings["collect"] - timings["train"]

    # 4. samples and the report
    curve = learning_curve(summary["history"], manifest, config, os.path.join(out, "learning_curve.png"))
    captions = _sample_captions(model, processor, data_dir, 2 if quick else 6)
    grounding = None
    if os.path.isdir(os.path.join(data_dir, "captions")):
        from ..evaluation.caption_grounding import measure_caption_grounding

        grounding = measure_caption_grounding(model, processor, data_dir)
        with open(os.path.join(out, "caption_grounding.json"), "w") as f:
            json.dump(grounding, f, indent=1)
    completions = _sample_completions(model, processor, 2 if quick else 4)
    report = _report(manifest, config, summary, results, captions, completions, timings, results_table, score_table,
                     curve, grounding)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(report)
    print("[4/4] report")
    print(report)
    print(f"\nwrote {out}/report.md, {out}/eval/eval_scores.png, {config.output_dir}/loss_curve.png and the model "
          f"directory {config.output_dir} (load it with trust_remote_code=True); {(time.time() - started) / 60:.1f} min")


def learning_curve(history: list[dict], manifest: dict, config, path: str) -> list[dict]:
    """Held-out policy accuracy and loss (restricted to each action slot's valid ids) per domain against training
    tokens, from the evaluations logged during training; writes `path` (PNG) and returns the points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domains = {task: info["domain"] for task, info in manifest["tasks"].items()}
    tokens_per_step = config.batch_size * config.gradient_accumulation_steps * config.context_length
    points = []
    for entry in history:
        by_domain: dict[str, list[tuple[float, float, float]]] = {}
        for task, domain in domains.items():
            if f"eval_{task}_policy_accuracy" in entry:  # weighted by the action tokens each task's numbers rest on
                by_domain.setdefault(domain, []).append(
                    (entry[f"eval_{task}_policy_accuracy"], entry[f"eval_{task}_policy_loss"],
                     max(entry.get(f"eval_{task}_policy_tokens", 1), 1)))
        if by_domain:
            points.append({"step": entry["step"], "tokens": entry["step"] * tokens_per_step,
                           **{f"{d}_accuracy": float(np.average([a for a, _, _ in v], weights=[w for *_, w in v]))
                              for d, v in by_domain.items()},
                           **{f"{d}_policy_loss": float(np.average([loss for _, loss, _ in v],
                                                                   weights=[w for *_, w in v]))
                              for d, v in by_domain.items()}})
    figure, (accuracy_axis, loss_axis) = plt.subplots(1, 2, figsize=(12, 4.2))
    for domain in sorted(set(domains.values())):
        series = [(p["tokens"] / 1e6, p[f"{domain}_accuracy"], p[f"{domain}_policy_loss"]) for p in points
                  if f"{domain}_accuracy" in p]
        if series:
            x, accuracy, loss = zip(*series)
            accuracy_axis.plot(x, accuracy, marker="o", label=domain)
            loss_axis.plot(x, loss, marker="o", label=domain)
    for axis, label in ((accuracy_axis, "held-out next-action accuracy (valid ids only)"),
                        (loss_axis, "held-out policy cross-entropy (valid ids only)")):
        axis.set_xlabel("training tokens (millions)")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("Learning curve per domain (given the true history, mean over the domain's tasks)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    with open(os.path.splitext(path)[0] + ".json", "w") as f:
        json.dump(points, f, indent=1)
    return points


def _weights(args) -> dict:
    return json.loads(args.weights) if args.weights else {}


def _measured_precision(hidden_size: int) -> tuple[bool, str]:
    """(bf16 autocast?, why) on the device Trainer will train on."""
    import torch

    from ..training.precision import bf16_autocast_speedup, describe_speedup, prefer_bf16

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_bf16_supported():
        return False, "float32 (this GPU has no bf16)"
    speedup = bf16_autocast_speedup(hidden_size, device=device)
    bf16 = prefer_bf16(speedup)
    return bf16, (f"{'bf16 autocast' if bf16 else 'float32'} (bf16 autocast measured {describe_speedup(speedup)} "
                  f"than float32 on this {device.upper()})")


def _describe(config) -> str:
    sizes = config.model_overrides
    return (f"{sizes['num_hidden_layers']}-layer, width-{sizes['hidden_size']}, context-{config.context_length}")


def _sample_captions(model, processor, data_dir: str, count: int) -> list[dict]:
    from datasets import load_from_disk

    path = os.path.join(data_dir, "captions")
    if not os.path.isdir(path):
        return []
    rows = load_from_disk(path)
    samples = []
    for index in range(max(0, len(rows) - count), len(rows)):  # the held-out end of the captions
        row = rows[index]
        inputs = processor(images=row["image"])
        with torch.no_grad():
            generated = model.generate(**inputs, max_new_tokens=16, do_sample=False)
        text = processor.decode(generated[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        samples.append({"reference": row["text"], "generated": text.strip()})
    return samples


def _sample_completions(model, processor, count: int) -> list[dict]:
    prompts = ["The return statement", "A class definition", "Exceptions are raised", "The for statement"][:count]
    samples = []
    for prompt in prompts:
        inputs = processor(text=prompt)
        with torch.no_grad():
            generated = model.generate(**inputs, max_new_tokens=20, do_sample=False)
        samples.append({"prompt": prompt, "completion": processor.decode(generated[0], skip_special_tokens=True)})
    return samples


def _report(manifest, config, summary, results, captions, completions, timings, results_table, score_table,
            curve=(), grounding=None) -> str:
    history = summary["history"]
    losses = [h["loss"] for h in history if "loss" in h]
    columns = [k for k in (curve[-1] if curve else {}) if k.endswith("_accuracy")]  # the learning curve's domains
    lines = [
        "# Gato demo report",
        "",
        f"One {_describe(config)} model ({config.model_overrides}) trained on every task, text, captions and VQA.",
        "",
        "## Evaluation (one set of weights)",
        "",
        results_table(results),
        "",
        "![scores](eval/eval_scores.png)",
        "",
        "## Training",
        "",
        f"- {summary['global_step']} steps of batch {config.batch_size} x {config.context_length} tokens; "
        f"train loss {losses[0]:.3f} (first log) -> {losses[-1]:.3f} (last log)." if losses else "- no loss logged",
        f"- recipe: learning rate {config.learning_rate:g} after {config.warmup_steps} warm-up steps, "
        f"{config.short_context_probability:.0%} of the episode samples packed from windows of "
        f"{'1' if config.short_context_timesteps == 1 else f'1-{config.short_context_timesteps}'} timestep(s), "
        f"continuous values embedded as {config.continuous_embedding}, bf16 autocast {'on' if config.bf16 else 'off'}.",
        f"- time: collect {timings['collect'] / 60:.1f} min, train {timings['train'] / 60:.1f} min, evaluate "
        f"{timings['evaluate'] / 60:.1f} min.",
        "",
        "![loss curve](model/loss_curve.png)",
        "",
        "## Learning curve (held-out policy accuracy per domain against training tokens)",
        "",
        "| step | tokens | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
        *[f"| {p['step']} | {p['tokens'] / 1e6:.2f}M | " + " | ".join(f"{p.get(k, float('nan')):.3f}" for k in columns)
          + " |" for p in curve],
        "",
        "![learning curve](learning_curve.png)",
        "",
        "## Expert and random references (from `collect`)",
        "",
        score_table(manifest["scores"]),
        "",
        "## Captions (held-out BabyAI views)",
        "",
        "| reference | generated |",
        "|---|---|",
    ]
    lines += [f"| {c['reference']} | {c['generated']} |" for c in captions] or ["| (no caption data) | |"]
    if grounding is not None:
        from ..evaluation.caption_grounding import grounding_table

        lines += ["", f"Grounding on the {grounding['captions']} held-out captions: objects (colour and kind) named by "
                  "the model's greedy caption against those really in view, beside two captioners blind to the image: "
                  f"the template prior (the most frequent training caption, \"{grounding['prior_caption']}\", for "
                  "every image) and the best constant caption (the training caption with the highest mean F1 on the "
                  f"training captions, \"{grounding['best_constant_caption']}\"):", "",
                  grounding_table(grounding)]
    lines += ["", "## Text completions (greedy)", "", "| prompt | completion |", "|---|---|"]
    lines += [f"| {c['prompt']} | {c['completion'].replace(chr(10), ' ')} |" for c in completions]
    lines += ["", "## Parameter counts of the paper's variants", "", variant_table(), ""]
    return "\n".join(lines)


def run_demo(args: argparse.Namespace) -> None:
    if args.core:
        run_core_demo(args)
    else:
        run_full_demo(args)
