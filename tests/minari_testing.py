"""Minari datasets recorded in the tests, with `minari` alone (no `minari[create]`, which pulls jax).

`minari.DataCollector` appends each step with `jax.tree_util`, hence its `create` extra (jax and jaxlib, ~85 MB of
wheels). These tests record whole episodes themselves and hand them to `minari.create_dataset_from_buffers`, which
writes the same dataset layout without jax.
"""

from __future__ import annotations


def record_random_minari_dataset(env_id: str, dataset_id: str, episodes: int, env_kwargs: dict | None = None,
                                 **dataset_kwargs):
    """Episodes `0..episodes-1` (reset seeds) of a uniform-random policy (action space seeded with 0) in `env_id`,
    saved under `MINARI_DATASETS_PATH` as `dataset_id`; returns the `MinariDataset`."""
    import gymnasium as gym
    from minari import create_dataset_from_buffers
    from minari.data_collector import EpisodeBuffer

    env = gym.make(env_id, **(env_kwargs or {}))
    env.action_space.seed(0)
    buffers = []
    for seed in range(episodes):
        observation, _ = env.reset(seed=seed)
        observations, actions, rewards, terminations, truncations = [observation], [], [], [], []
        done = False
        while not done:
            action = env.action_space.sample()
            observation, reward, terminated, truncated, _ = env.step(action)
            observations.append(observation)
            actions.append(action)
            rewards.append(float(reward))
            terminations.append(bool(terminated))
            truncations.append(bool(truncated))
            done = terminated or truncated
        buffers.append(EpisodeBuffer(id=seed, seed=seed, observations=observations, actions=actions,
                                     rewards=rewards, terminations=terminations, truncations=truncations, infos={}))
    dataset = create_dataset_from_buffers(dataset_id, buffers, env=env, algorithm_name="random", **dataset_kwargs)
    env.close()
    return dataset

