"""Batched rollouts in gymnasium vector envs: same episodes as one at a time, seeded Meta-World goals, videos."""

import json
from collections import defaultdict

import numpy as np
import pytest
import torch
from gato_testing import tiny_config

from modeling_gato import GatoForCausalModeling, GatoProcessor
from modeling_gato.agent import BatchedGatoAgent, GatoAgent

pytest.importorskip("minigrid")
pytest.importorskip("metaworld")

from modeling_gato.acting.rollouts import (  # noqa: E402
    GIF_FRAME_MS,
    expert_policy,
    gato_policy,
    random_policy,
    run_episodes,
)
from modeling_gato.data.collect import run_episode  # noqa: E402
from modeling_gato.envs.experts import BabyAIExpert  # noqa: E402
from modeling_gato.envs.tasks import make_env  # noqa: E402
from modeling_gato.evaluation.evaluate import play_episode  # noqa: E402


def lively_model(**overrides):
    """A random model with large weights, so that greedy actions vary from step to step (context 256 tokens)."""
    torch.manual_seed(0)
    return GatoForCausalModeling(tiny_config(initializer_range=0.5, max_position_embeddings=256, **overrides)).eval()


class Recorded:
    """A batch policy that records every episode's actions, by episode seed."""

    def __init__(self, policy):
        self.policy, self.num_rows = policy, policy.num_rows
        self.seed_of, self.actions = {}, defaultdict(list)

    def reset_rows(self, rows, seeds):
        self.seed_of.update(zip(rows, seeds))
        self.policy.reset_rows(rows, seeds)

    def act(self, observations, rows):
        actions = self.policy.act(observations, rows)
        for row, action in zip(rows, actions):
            self.actions[self.seed_of[row]].append(np.asarray(action).tolist())
        return actions

    def release_rows(self, rows):
        if hasattr(self.policy, "release_rows"):
            self.policy.release_rows(rows)


def expert_prompt(task):
    """The end of one real expert episode of `task` (BabyAI bot), as a prompt."""
    env = make_env(task)
    return run_episode(env, BabyAIExpert(env), seed=123)["columns"]


@pytest.mark.parametrize(
    "task, cap, prompt, context, step_tokens, temperature, history",
    [("BabyAI-GoToLocal-v0", 40, True, 256, 22, 1.0, None), ("CartPole-v1", 60, False, 48, 6, 0.0, None),
     ("metaworld-reach-v3", 30, False, 256, 44, 1.0, None), ("BabyAI-GoToLocal-v0", 40, True, 256, 22, 0.0, 3)],
)
def test_batched_episodes_equal_one_at_a_time(task, cap, prompt, context, step_tokens, temperature, history):
    """BatchedGatoAgent on 3 envs plays the very episodes that one GatoAgent plays one at a time on 1 env: the same
    actions at every step (greedy, or sampled from generators seeded with the episode seed), so the same returns,
    lengths and successes (the windows overflow)."""
    model, processor = lively_model(), GatoProcessor()
    kwargs = {"context_length": context, "temperature": temperature, "history_steps": history}
    if prompt:
        kwargs.update(prompt=expert_prompt(task), prompt_tokens=60)
    seeds = [11, 12, 13, 14, 15]
    one = Recorded(gato_policy(model, processor, task, num_envs=1, batched=False, **kwargs))
    many = Recorded(gato_policy(model, processor, task, num_envs=3, **kwargs))
    sequential = run_episodes(task, one, seeds, num_envs=1, max_episode_steps=cap, progress=False)
    batched = run_episodes(task, many, seeds, num_envs=3, max_episode_steps=cap, progress=False)
    assert [r["seed"] for r in batched] == seeds
    assert batched == sequential
    assert dict(many.actions) == dict(one.actions)
    assert [len(many.actions[s]) for s in seeds] == [r["length"] for r in batched]
    played = [json.dumps(a) for s in seeds for a in one.actions[s]]
    assert len(set(played)) > 1, "the test needs actions that vary"
    assert max(r["length"] for r in batched) * step_tokens > context, "the test needs windows that overflow"
    assert many.policy.slots == [] and many.policy.cache is None  # every row released at the end


@pytest.mark.parametrize("temperature, absolute", [(0.0, False), (1.0, False), (0.0, True)])
def test_batched_agent_acts_like_gato_agent_step_by_step(temperature, absolute):
    """Row by row, BatchedGatoAgent's actions are GatoAgent's, through BabyAI missions of different lengths (padding),
    window overflows (context 256, ~25 tokens a step) and a reset of one row while the other goes on."""
    model, processor = lively_model(use_absolute_position_embeddings=absolute), GatoProcessor()
    task = "BabyAI-GoToLocal-v0"
    envs = [make_env(task) for _ in range(4)]  # 0, 1: references; 2, 3: rows 0 and 1 of the batched agent
    space = envs[0].observation_space, envs[0].action_space
    references = [GatoAgent(model, processor, *space, temperature=temperature) for _ in range(2)]
    batched = BatchedGatoAgent(model, processor, *space, num_rows=2, temperature=temperature)
    seeds = [3, 8]
    observations = [envs[i].reset(seed=seeds[i % 2])[0] for i in range(4)]
    for agent, seed in zip(references, seeds):
        agent.reset(seed=seed)
    batched.reset_rows([0, 1], seeds)
    assert observations[0]["mission"] != observations[1]["mission"]
    actions = {0: [], 1: []}
    for step in range(36):
        if step == 20:  # a new episode in row 0 only
            observations[0], _ = envs[0].reset(seed=5)
            observations[2], _ = envs[2].reset(seed=5)
            references[0].reset(seed=5)
            batched.reset_rows([0], [5])
        expected = [references[row].act(observations[row]) for row in (0, 1)]
        got = batched.act([observations[2], observations[3]], [0, 1])
        assert got == expected, f"step {step}"
        for row in (0, 1):
            actions[row].append(got[row])
            for i in (row, row + 2):
                observations[i], _, terminated, truncated, _ = envs[i].step(expected[row])
                assert not (terminated or truncated)  # GoToLocal gives 64 steps; random weights do not finish
        assert batched.valid.shape[1] <= 256
        assert [sum(len(s["input_ids"]) for s in batched.rows[row].steps) for row in (0, 1)] == [
            sum(len(s["input_ids"]) for s in agent.steps) for agent in references]
    assert len(references[1].steps) < 36, "the window must have overflowed"
    assert len(set(actions[0])) > 1 and len(set(actions[1])) > 1
    batched.release_rows([0])
    assert batched.slots == [1] and batched.valid.shape[0] == 1


@pytest.mark.parametrize("task, factory", [
    ("BabyAI-GoToRedBallGrey-v0", "expert"), ("metaworld-reach-v3", "expert"), ("CartPole-v1", "random"),
    ("BabyAI-GoToLocal-v0", "random"),
])
def test_per_env_policies_give_the_same_episodes_for_any_num_envs(task, factory, tmp_path):
    make = expert_policy(task, cache_dir=str(tmp_path)) if factory == "expert" else random_policy
    seeds = [0, 1, 2, 3, 4]
    one = run_episodes(task, make, seeds, num_envs=1, max_episode_steps=60, progress=False)
    three = run_episodes(task, make, seeds, num_envs=3, max_episode_steps=60, progress=False)
    assert one == three
    returns = [r["return"] for r in one]
    assert len(set(returns)) > 1  # the seeds make different episodes
    if task.startswith("BabyAI"):
        assert all(r["success"] == (r["return"] > 0) for r in one)
    if factory == "expert" and task.startswith("BabyAI"):
        assert all(r["success"] for r in one) and min(returns) > 0.5  # 1 - 0.9 * steps / 64 with few steps
    if task.startswith("metaworld"):
        assert all(r["length"] == 60 and r["success"] is not None for r in one)
        assert all(r["success"] for r in one)  # the scripted reach policy reaches within 60 steps
    if task == "CartPole-v1":
        assert all(r["success"] is None for r in one)


def test_run_episodes_with_one_env_is_play_episode():
    """`run_episodes(..., num_envs=1)` with one GatoAgent per row is `evaluate.play_episode` in a loop."""
    model, processor = lively_model(), GatoProcessor()
    for task, cap in [("CartPole-v1", 60), ("metaworld-reach-v3", 20)]:
        env = make_env(task, seed=1)
        agent = GatoAgent(model, processor, env.observation_space, env.action_space)
        expected = [play_episode(env, agent, seed, cap) for seed in (4, 5, 6)]
        policy = gato_policy(model, processor, task, num_envs=1, batched=False)
        assert run_episodes(task, policy, [4, 5, 6], max_episode_steps=cap, progress=False) == expected


def test_metaworld_goal_is_a_function_of_env_seed_and_episode_seed():
    def goal(env, seed=None):
        env.reset(seed=seed)
        return env.unwrapped._target_pos.copy()

    env = make_env("metaworld-reach-v3", seed=1)
    first = goal(env, 7)
    goal(env), goal(env)  # resets without a seed draw other goals
    other = goal(env, 8)
    assert not np.allclose(first, other)
    np.testing.assert_array_equal(goal(env, 7), first)  # whatever the reset history
    np.testing.assert_array_equal(goal(make_env("metaworld-reach-v3", seed=1), 7), first)  # a fresh env
    assert not np.allclose(goal(make_env("metaworld-reach-v3", seed=2), 7), first)  # another goal set

    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    vector = SyncVectorEnv([lambda: make_env("metaworld-reach-v3", seed=1)] * 2, autoreset_mode=AutoresetMode.DISABLED)
    vector.reset(seed=[8, 9])
    vector.reset(seed=[None, 7], options={"reset_mask": np.array([False, True])})  # a partial reset
    np.testing.assert_array_equal(vector.envs[1].unwrapped._target_pos, first)
    np.testing.assert_array_equal(vector.envs[0].unwrapped._target_pos, other)
    vector.close()


def test_videos_are_gifs_of_the_first_episodes(tmp_path):
    from PIL import Image

    seeds = [0, 1, 2]
    plain = run_episodes("CartPole-v1", random_policy, seeds, num_envs=2, progress=False)
    filmed = run_episodes("CartPole-v1", random_policy, seeds, num_envs=2, video_dir=str(tmp_path), videos=2,
                          progress=False)
    assert [{k: v for k, v in r.items() if k != "video"} for r in filmed] == plain  # rendering changes nothing
    assert "video" not in filmed[2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CartPole-v1-seed0.gif", "CartPole-v1-seed1.gif"]
    for result in filmed[:2]:
        with Image.open(result["video"]) as gif:
            durations = []
            for index in range(gif.n_frames):
                gif.seek(index)
                durations.append(gif.info["duration"])
            assert gif.size == (320, 213)  # 600 x 400 scaled down
        # one frame after the reset and one after each step (identical neighbours merged, durations added)
        assert sum(durations) == (result["length"] + 1) * GIF_FRAME_MS
        assert 1 < len(durations) <= result["length"] + 1


def test_rows_too_different_for_one_call_are_fed_in_chunks():
    """Context = max_position_embeddings = 256 and observations of 7 vs 57 tokens: a nearly full row beside a long
    new observation does not fit in 256 columns, so the new tokens go in chunks; actions stay GatoAgent's."""
    from gymnasium import spaces

    model, processor = lively_model(), GatoProcessor()
    observation_space = spaces.Dict({"mission": spaces.Text(400), "value": spaces.Box(-1, 1, (4,))})
    action_space = spaces.Box(-1.0, 1.0, (2,))
    references = [GatoAgent(model, processor, observation_space, action_space) for _ in range(2)]
    batched = BatchedGatoAgent(model, processor, observation_space, action_space, num_rows=2)
    chunked = []
    tidy = batched._tidy

    def spy(incoming):
        tidy(incoming)
        chunked.append(batched.valid.shape[1] + incoming > batched.max_columns)

    batched._tidy = spy
    for agent, seed in zip(references, (0, 1)):
        agent.reset(seed=seed)
    batched.reset_rows([0, 1], [0, 1])
    rng, played = np.random.default_rng(0), set()
    words = ["go", "to", "the", "red", "ball", "pick", "up", "a", "green", "key", "open", "blue", "door"]
    for step in range(60):
        observations = [
            {"mission": "go", "value": rng.uniform(-1, 1, 4).astype(np.float32)},
            {"mission": " ".join(rng.choice(words, 40)), "value": rng.uniform(-1, 1, 4).astype(np.float32)},
        ]
        expected = [np.asarray(agent.act(o)).tolist() for agent, o in zip(references, observations)]
        assert [np.asarray(a).tolist() for a in batched.act(observations, [0, 1])] == expected, f"step {step}"
        assert batched.valid.shape[1] <= 256
        played.add(json.dumps(expected))
    assert len(played) > 1
    assert any(chunked), "the test needs a call that does not fit in one go"
