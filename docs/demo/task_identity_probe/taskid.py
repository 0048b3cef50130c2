"""The task-identity probe (issue 14): does a one-timestep model learn the three Meta-World tasks together when each
timestep also says which task it is?

One observation does not say whether it comes from reach or pick-place (same 39-float layout, same goal ranges), so a
model that acts on the current timestep alone is asked for two different actions at the same state. Meta-World's own
multi-task benchmarks (MT10, MT50) append a one-hot task id to the observation; here each timestep gets one discrete
observation token, its task's index. Not a package option: measured, not adopted (see README.md).

    python taskid.py build DATA OUT                 # OUT: DATA's Meta-World tasks, each timestep with its index
    python taskid.py eval MODEL DATA OUT [--ids]    # 10 episodes a task, seeds 1000-1009, goal set 1, model only, greedy

At the demo's scale (../task_index_run): `build DATA OUT --all` keeps every other task and the text, caption and VQA
data as they are (linked, not copied); `eval ... --all --episodes 5 --env-seed 2 --temperature 1` plays every task of
DATA as the demo's table does (seeds 1000-1004, goal set 2, actions sampled), model only.
"""

import json
import os
import shutil
import sys

TASKS = ["metaworld-reach-v3", "metaworld-push-v3", "metaworld-pick-place-v3"]


def build(source: str, output: str, keep_all: bool = False) -> None:
    """A data directory with `source`'s Meta-World episodes, each timestep with `discrete_observations = [index]`;
    with `keep_all`, `source`'s other tasks and its text / caption / VQA data too (symbolic links)."""
    from datasets import load_from_disk

    with open(os.path.join(source, "manifest.json")) as f:
        manifest = json.load(f)
    if keep_all:
        os.makedirs(os.path.join(output, "episodes"), exist_ok=True)
        for task in manifest["tasks"]:
            if task not in TASKS:
                os.symlink(os.path.abspath(os.path.join(source, "episodes", task)), os.path.join(output, "episodes", task))
        for name in os.listdir(source):
            if name not in ("episodes", "manifest.json", "scores.json", "README.md"):
                os.symlink(os.path.abspath(os.path.join(source, name)), os.path.join(output, name))
    else:
        manifest["tasks"] = {task: manifest["tasks"][task] for task in TASKS}
        for kind in ("text", "captions", "vqa"):
            manifest.pop(kind, None)
    for index, task in enumerate(TASKS):
        episodes = load_from_disk(os.path.join(source, "episodes", task))
        episodes = episodes.map(lambda row, i=index: {"discrete_observations": [[i]] * len(row["rewards"])})
        episodes.save_to_disk(os.path.join(output, "episodes", task))
        manifest["tasks"][task]["observation_columns"] = ["continuous_observations", "discrete_observations"]
    with open(os.path.join(output, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    shutil.copy(os.path.join(source, "scores.json"), output)


def give_environments_their_index() -> None:
    """Make the rollouts' Meta-World environments return `{"state": observation, "task": index}` (the same tokens
    as `build`'s data: the continuous values, then the discrete index)."""
    import gymnasium as gym

    import modeling_gato.acting.rollouts as rollouts

    make_env = rollouts.make_env

    class TaskIndex(gym.ObservationWrapper):
        def __init__(self, env, index: int):
            super().__init__(env)
            self.index = index
            self.observation_space = gym.spaces.Dict(
                {"state": env.observation_space, "task": gym.spaces.Discrete(len(TASKS))})

        def observation(self, observation):
            return {"state": observation, "task": self.index}

    def make_indexed_env(task, *args, **kwargs):
        env = make_env(task, *args, **kwargs)
        name = task if isinstance(task, str) else task.name
        return TaskIndex(env, TASKS.index(name)) if name in TASKS else env

    rollouts.make_env = make_indexed_env


def evaluate(model_dir: str, data: str, output: str, indexed: bool, all_tasks: bool = False, episodes: int = 10,
             env_seed: int = 1, temperature: float = 0.0) -> None:
    if indexed:
        give_environments_their_index()
    from modeling_gato import GatoForCausalModeling, GatoProcessor
    from modeling_gato.evaluation.evaluate import evaluate as run

    model = GatoForCausalModeling.from_pretrained(model_dir).eval()
    processor = GatoProcessor.from_pretrained(model_dir)
    run(model, processor, data, output, model_dir=model_dir, tasks=None if all_tasks else TASKS, episodes=episodes,
        num_envs=min(episodes, 10), seed=1000, env_seed=env_seed, baselines=(), offline=False, progress=False,
        temperature=temperature)  # the probe's defaults: greedy, 10 episodes, goal set 1
    with open(os.path.join(output, "eval_results.md")) as f:
        print(f.read())


def _option(name: str, default: str) -> str:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


if __name__ == "__main__":
    if sys.argv[1] == "build":
        build(sys.argv[2], sys.argv[3], keep_all="--all" in sys.argv)
    else:
        evaluate(sys.argv[2], sys.argv[3], sys.argv[4], "--ids" in sys.argv, all_tasks="--all" in sys.argv,
                 episodes=int(_option("--episodes", "10")), env_seed=int(_option("--env-seed", "1")),
                 temperature=float(_option("--temperature", "0")))
