"""`python -m modeling_gato evaluate ...` on Meta-World environments whose observations are changed as the probe's
data was: `--zero-previous` zeroes the previous-frame block obs[18:36] (make_subsets.py's NAMEnv data);
`--standardize STATS.npz` standardizes every dimension (make_std.py's data). The model and 1-NN see the same.

    python eval_probe.py [--zero-previous | --standardize STATS.npz] evaluate ARGS..."""

import sys

import gymnasium as gym
import numpy as np

import modeling_gato.acting.rollouts as rollouts
from modeling_gato.envs.tasks import get_task, make_env


class ZeroPrevious(gym.ObservationWrapper):
    def observation(self, observation):
        observation = np.array(observation, copy=True)
        observation[18:36] = 0
        return observation


class Standardize(gym.ObservationWrapper):
    def __init__(self, env, stats):
        super().__init__(env)
        self.mean, self.std = stats["mean"], stats["std"]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, env.observation_space.shape, np.float64)

    def observation(self, observation):
        return (np.asarray(observation, np.float64) - self.mean) / self.std


def wrapped(wrap):
    """`make_env` with Meta-World environments wrapped by `wrap(env)`."""

    def make(task, seed=None, render_mode=None):
        env = make_env(task, seed=seed, render_mode=render_mode)
        spec = get_task(task) if isinstance(task, str) else task
        return wrap(env) if spec.domain == "metaworld" else env

    return make


if sys.argv[1] == "--zero-previous":
    del sys.argv[1]
    rollouts.make_env = wrapped(ZeroPrevious)
elif sys.argv[1] == "--standardize":
    stats = np.load(sys.argv[2])
    del sys.argv[1:3]
    rollouts.make_env = wrapped(lambda env: Standardize(env, stats))
from modeling_gato.cli.commands import main  # noqa: E402  (after the patch)

sys.exit(main(sys.argv[1:]))
