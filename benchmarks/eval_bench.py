"""Batched evaluation benchmark (issue 9): episodes/s, one at a time vs N environments at once.

Sequential: `evaluate.play_episode` in a loop with one `GatoAgent` (one model call per action token, batch of 1), as
`evaluate` plays today. Batched: `rollouts.run_episodes` with a `BatchedGatoAgent` on a `SyncVectorEnv` of N copies
(one model call per action token for all N rows, one KV cache). Both play the same seeds, with the same prompt, and
must give the same per-episode results (seed, return, length, success): the table says whether they do. Times
include making the environments (N of them, plus one for the spaces, in the batched run) and their steps and
resets, as a real evaluation does. "window cuts": how often the sequential agent's window was full and recomputed
(the batched agent cuts the same windows).

    python benchmarks/eval_bench.py                       # demo-2 model and demo-full prompts when present
    python benchmarks/eval_bench.py --random-model        # a random model of the same size instead
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from modeling_gato import GatoConfig, GatoForCausalModeling, GatoProcessor  # noqa: E402
from modeling_gato.acting.rollouts import gato_policy, run_episodes  # noqa: E402
from modeling_gato.agent import GatoAgent  # noqa: E402
from modeling_gato.envs.tasks import get_task, make_env  # noqa: E402
from modeling_gato.evaluation.evaluate import play_episode  # noqa: E402

DEFAULT_MODEL = os.path.join(ROOT, "outputs", "demo-2", "model")
DEFAULT_DATA = os.path.join(ROOT, "outputs", "demo-full", "data")


def load(args) -> tuple[GatoForCausalModeling, GatoProcessor, str]:
    if not args.random_model and os.path.isdir(args.model):
        model = GatoForCausalModeling.from_pretrained(args.model).eval()
        return model, GatoProcessor.from_pretrained(args.model), os.path.relpath(args.model, ROOT)
    torch.manual_seed(0)
    config = GatoConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=8, head_dim=32,
                        intermediate_size=1024, max_position_embeddings=1024)
    return GatoForCausalModeling(config).eval(), GatoProcessor(), "random weights, width 256, 4 layers"


def prompt_of(task: str, data_dir: str | None):
    """The last collected episode of `task` (what `evaluate` prompts with), or None."""
    path = os.path.join(data_dir, "episodes", task) if data_dir else None
    if not path or not os.path.isdir(path):
        return None
    from datasets import load_from_disk

    rows = load_from_disk(path)
    return rows[len(rows) - 1]


class CountingAgent(GatoAgent):
    """A `GatoAgent` that counts its window cuts (each one recomputes the whole window: the cost batching cannot
    share on a CPU, where a long forward pass is already compute-bound)."""

    cuts = 0

    def _make_room(self, needed: int) -> None:
        if self._window_tokens() + needed > self.context_length:
            self.cuts += 1
        super()._make_room(needed)


def sequential(model, processor, task, seeds, prompt, cap, env_seed) -> tuple[list[dict], float, int]:
    spec = get_task(task)
    started = time.perf_counter()
    env = make_env(spec, seed=env_seed)
    agent = CountingAgent(model, processor, env.observation_space, env.action_space, prompt=prompt)
    results = [play_episode(env, agent, seed, cap, babyai=spec.domain == "babyai") for seed in seeds]
    env.close()
    return results, time.perf_counter() - started, agent.cuts


def batched(model, processor, task, seeds, prompt, cap, env_seed, num_envs) -> tuple[list[dict], float]:
    started = time.perf_counter()
    policy = gato_policy(model, processor, task, num_envs, prompt=prompt)
    results = run_episodes(task, policy, seeds, num_envs=num_envs, env_seed=env_seed, max_episode_steps=cap,
                           progress=False)
    return results, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--random-model", action="store_true")
    parser.add_argument("--data", default=DEFAULT_DATA, help="a `collect` directory: prompts (none if missing)")
    parser.add_argument("--tasks", nargs="*", default=["BabyAI-GoToLocal-v0", "metaworld-reach-v3"])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--num-envs", type=int, nargs="*", default=[4, 8])
    parser.add_argument("--max-episode-steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--env-seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, processor, described = load(args)
    data = args.data if os.path.isdir(args.data) else None
    seeds = list(range(args.seed, args.seed + args.episodes))
    parameters = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"Batched evaluation benchmark, {time.strftime('%Y-%m-%d %H:%M')}\n")
    print(f"Machine: {os.cpu_count()} cores ({platform.machine()}), torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads, Python {platform.python_version()}; load average at start "
          f"{os.getloadavg()[0]:.1f}. Model: {described} ({parameters:.1f}M parameters, context "
          f"{model.config.max_position_embeddings}); prompts: {'last episode in ' + os.path.relpath(data, ROOT) if data else 'none'}. "
          f"{args.episodes} episodes per task (seeds {seeds[0]}...), at most {args.max_episode_steps} steps each, "
          f"greedy. Command: `{' '.join(['python', 'benchmarks/eval_bench.py', *sys.argv[1:]])}`\n")
    print("| task | steps per episode (cap) | steps played | window cuts | make_env s | num_envs | sequential episodes/s "
          "| batched episodes/s | speed-up | same results |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    quiet = contextlib.redirect_stdout(sys.stderr)  # minigrid prints "Sampling rejected" while making levels
    for task in args.tasks:
        prompt = prompt_of(task, data)
        with quiet:
            started = time.perf_counter()
            make_env(task, seed=args.env_seed).close()
            making = time.perf_counter() - started
            reference, seconds, cuts = sequential(model, processor, task, seeds, prompt, args.max_episode_steps,
                                                  args.env_seed)
        steps = sum(r["length"] for r in reference)
        print(f"{task}: sequential {seconds:.1f} s, mean return {np.mean([r['return'] for r in reference]):.3f}",
              file=sys.stderr)
        for num_envs in args.num_envs:
            with quiet:
                results, batched_seconds = batched(model, processor, task, seeds, prompt, args.max_episode_steps,
                                                   args.env_seed, num_envs)
            print(f"| {task} | {steps / len(seeds):.1f} ({args.max_episode_steps}) | {steps} | {cuts} | {making:.2f} "
                  f"| {num_envs} | {len(seeds) / seconds:.3f} | {len(seeds) / batched_seconds:.3f} "
                  f"| **{seconds / batched_seconds:.2f}x** | {results == reference} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
