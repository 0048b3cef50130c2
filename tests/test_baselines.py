"""The 1-nearest-neighbour baseline: known nearest neighbours on hand-made data (continuous, discrete, image + text),
stored actions mapped to the environment exactly, modality weights, errors, and real environments."""

from __future__ import annotations

import os

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")

from modeling_gato.acting.baselines import (  # noqa: E402
    NearestNeighbourIndex,
    NearestNeighbourPolicy,
    nearest_neighbour_factory,
)

spaces = gym.spaces


def test_continuous_neighbours_are_standardized_and_actions_mapped_to_the_box():
    # three timesteps whose two dimensions have very different scales: in raw units (600, 0) is closest to
    # B = (1000, 1) (distance 400.001); standardized (mean (333.3, 0.667), std (471.4, 0.471)) it is A = (0, 0):
    # A (1.27, 0)^2 = 1.62 against B (0.85, 2.12)^2 = 5.2 and C (1.27, 2.12)^2 = 6.1
    rows = [{"continuous_observations": [[0.0, 0.0], [1000.0, 1.0]], "continuous_actions": [[0.5], [-1.0]]},
            {"continuous_observations": [[0.0, 1.0]], "continuous_actions": [[1.0]]}]
    observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = spaces.Box(np.array([-2.0], np.float32), np.array([2.0], np.float32))
    policy = NearestNeighbourPolicy.from_episodes(rows, observation_space, action_space)
    action = policy(np.array([600.0, 0.0]))
    assert policy.last_index == 0
    np.testing.assert_array_equal(action, np.array([1.0], np.float32))  # -2 + (0.5 + 1) / 2 * 4
    assert action.dtype == np.float32 and action_space.contains(action)
    np.testing.assert_array_equal(policy(np.array([990.0, 0.9])), np.array([-2.0], np.float32))  # B: stored -1
    np.testing.assert_array_equal(policy(np.array([1.0, 0.9])), np.array([2.0], np.float32))  # C: stored +1
    # several queries at once (chunked) give the same neighbours
    index = policy.index
    queries = {"continuous_observations": [[600.0, 0.0], [990.0, 0.9], [1.0, 0.9]] * 3}
    np.testing.assert_array_equal(index.nearest(queries, chunk_size=2), [0, 1, 2] * 3)


def test_discrete_one_hot_or_scaled():
    rows = [{"discrete_observations": [[0], [1], [5]], "discrete_actions": [0, 1, 2]}]
    observation_space = spaces.Discrete(8)
    action_space = spaces.Discrete(3, start=1)  # stored index 0 is the environment's action 1
    one_hot = NearestNeighbourPolicy.from_episodes(rows, observation_space, action_space)
    assert one_hot(5) == 3 and one_hot.last_index == 2
    assert one_hot(1) == 2
    # an unseen value is equally far from every one-hot code: the tie goes to the earliest timestep
    assert one_hot(4) == 1 and one_hot.last_index == 0
    # more values than max_one_hot: the value is standardized, and 4 is closest to 5
    scaled = NearestNeighbourPolicy.from_episodes(rows, observation_space, action_space, max_one_hot=2)
    assert scaled(4) == 3 and scaled.last_index == 2
    multi = NearestNeighbourPolicy.from_episodes(
        [{"discrete_observations": [[0], [1]], "discrete_actions": [[1, 0], [0, 2]]}], observation_space,
        spaces.MultiDiscrete([2, 3]))
    np.testing.assert_array_equal(multi(1), [0, 2])


def image(value: int, size: int = 24) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


def test_image_and_text_grouping():
    red, blue = "go to the red ball", "go to the blue key"
    rows = [
        {"image_observations": [image(0), image(255)], "text_observations": [red, red], "discrete_actions": [0, 1]},
        {"image_observations": [image(0), image(255)], "text_observations": [blue, blue], "discrete_actions": [2, 3]},
    ]
    observation_space = spaces.Dict({"image": spaces.Box(0, 255, (24, 24, 3), np.uint8),
                                     "mission": spaces.Text(64)})
    policy = NearestNeighbourPolicy.from_episodes(rows, observation_space, spaces.Discrete(4), image_size=8)
    assert policy({"image": image(10), "mission": blue}) == 2  # same mission only: the blue episode's dark view
    assert policy({"image": image(240), "mission": blue}) == 3
    assert policy({"image": image(240), "mission": red}) == 1
    # an unknown mission: every timestep is a candidate; the two white views tie, the earliest wins
    assert policy({"image": image(240), "mission": "pick up the box"}) == 1 and policy.last_index == 1
    # batched queries of mixed missions
    steps = {"image_observations": [image(10), image(240), image(250)], "text_observations": [red, blue, "other"]}
    np.testing.assert_array_equal(policy.index.nearest(steps), [0, 3, 1])
    # CHW, float and grey images give the same features as HWC uint8
    chw = policy.index.transform({"image_observations": [np.full((3, 24, 24), 1.0)], "text_observations": [red]})
    np.testing.assert_allclose(chw, policy.index.transform({"image_observations": [image(255)],
                                                            "text_observations": [red]}))


def test_modality_weights_equalize_total_variance():
    """After scaling, every block's total variance over the training set is 1, whatever its dimensionality."""
    rng = np.random.default_rng(0)
    rows = [{"continuous_observations": rng.normal(0, 50, size=(30, 39)).tolist(),
             "discrete_observations": rng.integers(0, 4, size=(30, 1)).tolist(),
             "image_observations": [rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8) for _ in range(30)],
             "discrete_actions": rng.integers(0, 3, size=30).tolist()}]
    index = NearestNeighbourIndex.from_episodes(rows)
    widths = {"continuous": 39, "discrete": 4, "image": 16 * 16 * 3}
    start = 0
    for name in ("continuous", "discrete", "image"):
        block = index.features[:, start : start + widths[name]]
        assert block.var(0).sum() == pytest.approx(1.0), name
        start += widths[name]
    assert start == index.features.shape[1]
    # a block that is constant in training carries no information: weight 0
    constant = NearestNeighbourIndex.from_episodes([{"continuous_observations": [[1.0, 2.0]] * 3,
                                                     "discrete_observations": [[0], [1], [0]],
                                                     "discrete_actions": [0, 1, 2]}])
    assert constant.statistics["scales"]["continuous"] == 0.0
    np.testing.assert_array_equal(constant.nearest({"continuous_observations": [[5.0, 5.0]],
                                                    "discrete_observations": [[1]]}), [1])


def test_bad_inputs_are_refused():
    box = spaces.Box(-1.0, 1.0, (1,), np.float32)
    with pytest.raises(ValueError, match="expected at least one episode"):
        NearestNeighbourIndex.from_episodes([])
    with pytest.raises(ValueError, match="expected exactly one action column"):
        NearestNeighbourIndex.from_episodes([{"continuous_observations": [[0.0]]}])
    with pytest.raises(ValueError, match="no observation column"):
        NearestNeighbourIndex.from_episodes([{"discrete_actions": [0]}])
    with pytest.raises(ValueError, match="column 'continuous_observations' has 1 timesteps, expected 2"):
        NearestNeighbourIndex.from_episodes([{"continuous_observations": [[0.0]], "discrete_actions": [0, 1]}])
    rows = [{"continuous_observations": [[0.0], [1.0]], "discrete_actions": [0, 1]}]
    with pytest.raises(ValueError, match="a Box action space needs 'continuous_actions'"):
        NearestNeighbourPolicy.from_episodes(rows, box, box)
    index = NearestNeighbourIndex.from_episodes(rows)
    with pytest.raises(ValueError, match=r"missing columns \['continuous_observations'\]"):
        index.nearest({"discrete_observations": [[0]]})
    with pytest.raises(ValueError, match="expected 1 values per timestep, got 2"):
        index.nearest({"continuous_observations": [[0.0, 1.0]]})


# ---------------------------------------------------------------------------- real environments
def _expert_rows(task: str, seeds, cache_dir: str) -> list[dict]:
    from modeling_gato.data.collect import _to_rows, run_episode
    from modeling_gato.envs.experts import make_expert
    from modeling_gato.envs.tasks import get_task, make_env

    spec = get_task(task)
    env = make_env(spec)
    expert = make_expert(spec, env, cache_dir, train=True)
    rows = _to_rows([run_episode(env, expert, seed=seed) for seed in seeds], task)
    env.close()
    return rows


def test_babyai_replays_the_expert_on_a_training_observation(tmp_path):
    pytest.importorskip("minigrid")
    from modeling_gato.envs.tasks import make_env

    rows = _expert_rows("BabyAI-GoToRedBallGrey-v0", [0, 1], str(tmp_path))
    env = make_env("BabyAI-GoToRedBallGrey-v0")
    policy = nearest_neighbour_factory(rows)(env)
    observation, _ = env.reset(seed=0)
    policy.reset(env)
    assert policy(observation) == rows[0]["discrete_actions"][0] and policy.last_index == 0  # distance 0
    env.close()


def test_cartpole_one_nn_is_far_above_random(tmp_path):
    """5 expert episodes (2,500 timesteps) -> the 1-NN policy. Measured here on seeds 100-104: returns 500, 500, 500,
    500, 221 (mean 444.2; CartPole's maximum is 500), against 19, 49, 18, 63, 38 (mean 37.4) for the uniform
    random policy."""
    pytest.importorskip("stable_baselines3")
    from modeling_gato.data.collect import run_episode
    from modeling_gato.envs.experts import RandomPolicy
    from modeling_gato.envs.tasks import make_env

    cache = os.environ.get("GATO_EXPERT_CACHE", str(tmp_path / "experts"))
    rows = _expert_rows("CartPole-v1", range(5), cache)
    factory = nearest_neighbour_factory(rows)
    env = make_env("CartPole-v1")
    nearest = [run_episode(env, factory(env), seed=100 + i, record=False)["return"] for i in range(5)]
    random = [run_episode(env, RandomPolicy(env, seed=100 + i), seed=100 + i, record=False)["return"]
              for i in range(5)]
    env.close()
    assert np.mean(nearest) >= 250 and np.mean(nearest) > 5 * np.mean(random), (nearest, random)


def test_quantized_nearest_neighbour_sees_the_models_bins():
    # benchmarks/nearest_ablations.py: 1-NN on the bins the model reads. Training value A lies just below the lower
    # edge of bin 820 (mu-law space), B inside it; the query sits just above the edge. On raw values the query is
    # nearest to A (0.002 against B's 0.004 away); quantized, the query and B read the same bin (distance 0).
    from gato_testing import load_benchmark

    from modeling_gato.processing_gato import GatoDiscretizer

    module = load_benchmark("nearest_ablations.py")
    discretizer = GatoDiscretizer()
    edge = float(discretizer.inverse_mu_law(-1 + 2 * 820 / 1024))  # 4.476: bin 820 is [4.476, 4.566)
    a, b, query = edge - 0.001, edge + 0.005, edge + 0.001
    assert discretizer.encode(a) == 32819 and discretizer.encode(b) == discretizer.encode(query) == 32820
    rows = [{"continuous_observations": [[a], [b], [-1.0]], "continuous_actions": [[-1.0], [1.0], [0.0]]}]
    quantized = module.quantized_rows(rows, discretizer)
    np.testing.assert_allclose(np.asarray(quantized[0]["continuous_observations"])[:, 0],
                               discretizer.decode(discretizer.encode([a, b, -1.0])))
    assert quantized[0]["continuous_actions"] == rows[0]["continuous_actions"]  # actions are not touched
    observation_space = spaces.Box(-np.inf, np.inf, (1,), np.float64)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    raw = NearestNeighbourPolicy.from_episodes(rows, observation_space, action_space)
    raw(np.array([query]))
    assert raw.last_index == 0
    seen = module.QuantizedNearestNeighbourPolicy(NearestNeighbourIndex.from_episodes(quantized), observation_space,
                                                 action_space, discretizer)
    np.testing.assert_array_equal(seen(np.array([query])), np.array([1.0], np.float32))
    assert seen.last_index == 1
