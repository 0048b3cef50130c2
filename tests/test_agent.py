"""The agent in real environments, evaluation, and the quick demo."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from gato_testing import tiny_config

from modeling_gato import GatoForCausalModeling, GatoProcessor
from modeling_gato.agent import GatoAgent

pytest.importorskip("minigrid")
pytest.importorskip("metaworld")

from modeling_gato.envs.tasks import make_env  # noqa: E402


def lively_model(**overrides):
    """A random model with large weights, so that greedy actions vary from step to step."""
    torch.manual_seed(0)
    return GatoForCausalModeling(tiny_config(initializer_range=0.5, max_position_embeddings=256, **overrides)).eval()


def play(agent, env, steps, seed=0):
    observation, _ = env.reset(seed=seed)
    agent.reset(seed=seed)
    actions = []
    for _ in range(steps):
        action = agent.act(observation)
        assert env.action_space.contains(action), action  # decoded actions are valid environment actions
        actions.append(np.asarray(action).tolist())
        observation, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    return actions


@pytest.mark.parametrize("task,embedding", [("metaworld-reach-v3", "table"), ("BabyAI-GoToLocal-v0", "table"),
                                            ("CartPole-v1", "table"), ("metaworld-reach-v3", "table+fourier")])
def test_acting_with_the_cache_equals_acting_without_it(task, embedding):
    """Greedy actions with the KV cache and with a full recomputation per token are the same, across a window
    that overflows (context 256 tokens: the oldest timesteps are dropped and the cache rebuilt)."""
    model, processor = lively_model(continuous_embedding=embedding), GatoProcessor()
    runs = []
    for use_cache in (True, False):
        env = make_env(task)  # a fresh environment for each run
        agent = GatoAgent(model, processor, env.observation_space, env.action_space, use_cache=use_cache)
        runs.append(play(agent, env, steps=14))
    assert runs[0] == runs[1]
    assert len({json.dumps(a) for a in runs[0]}) > 1, "the test needs actions that vary"


def test_the_window_keeps_whole_timesteps_and_the_prompt_comes_first():
    model, processor = lively_model(), GatoProcessor()
    env = make_env("metaworld-reach-v3")
    prompt = {"continuous_observations": np.zeros((10, 39)).tolist(), "continuous_actions": np.zeros((10, 4)).tolist()}
    agent = GatoAgent(model, processor, env.observation_space, env.action_space, prompt=prompt, prompt_tokens=100)
    assert len(agent.steps) == 1 and len(agent.steps[0]["input_ids"]) == 88  # 2 whole timesteps of 44 tokens
    observation, _ = env.reset(seed=0)
    for _ in range(12):
        observation, *_ = env.step(agent.act(observation))
        assert agent._window_tokens() <= 256
        for step in agent.steps[1:]:
            assert len(step["input_ids"]) == 44 and step["input_ids"][39] == 33024  # 39 obs, separator, 4 actions
    assert agent.cache is not None and agent.cached_tokens <= 256


def test_sampling_is_seeded():
    model, processor = lively_model(), GatoProcessor()
    env = make_env("BabyAI-GoToRedBallGrey-v0")
    agent = GatoAgent(model, processor, env.observation_space, env.action_space, temperature=1.0)
    first, again, other = play(agent, env, 8, seed=3), play(agent, env, 8, seed=3), play(agent, env, 8, seed=4)
    assert first == again and first != other


def test_a_greedy_memoryless_agent_repeats_itself_where_sampling_does_not():
    """Why `evaluate` samples: an agent that sees the current timestep alone is, when greedy, a fixed function of the
    observation, so an action that leaves the observation unchanged (BabyAI's pickup facing nothing, forward into a
    wall) comes back at every step until the episode ends. Sampled, the same observation gets other actions too, and
    the draws are the episode seed's."""
    model, processor = lively_model(), GatoProcessor()
    env = make_env("BabyAI-GoToRedBallGrey-v0")
    observation, _ = env.reset(seed=0)

    def repeated(temperature, seed=0):
        agent = GatoAgent(model, processor, env.observation_space, env.action_space, temperature=temperature,
                          history_steps=1, prompt_tokens=0)
        agent.reset(seed=seed)
        return [int(agent.act(observation)) for _ in range(12)]

    assert len(set(repeated(0.0))) == 1
    sampled = repeated(1.0)
    assert len(set(sampled)) > 1
    assert sampled == repeated(1.0) and sampled != repeated(1.0, seed=1)


def test_continuous_temperature_applies_to_box_actions_only():
    """`continuous_temperature` replaces `temperature` for a Box action space and nowhere else: greedy continuous
    actions with `temperature=1` are exactly the greedy agent's, while a Discrete task samples as at temperature 1
    (the same draws for the same seed); the batched agent chooses the same way; bad values are refused by name."""
    from modeling_gato.agent import BatchedGatoAgent, action_temperature

    model, processor = lively_model(), GatoProcessor()
    reach, babyai = make_env("metaworld-reach-v3"), make_env("BabyAI-GoToRedBallGrey-v0")

    def agent(env, **settings):
        return GatoAgent(model, processor, env.observation_space, env.action_space, history_steps=1, prompt_tokens=0,
                         **settings)

    greedy = play(agent(reach, temperature=0.0), reach, 6)
    assert play(agent(reach, temperature=1.0, continuous_temperature=0.0), reach, 6) == greedy
    assert play(agent(reach, temperature=1.0), reach, 6) != greedy  # sampling differs here, so the test can fail
    sampled = play(agent(babyai, temperature=1.0), babyai, 8, seed=3)
    assert play(agent(babyai, temperature=1.0, continuous_temperature=0.0), babyai, 8, seed=3) == sampled
    assert play(agent(babyai, temperature=0.0, continuous_temperature=1.0), babyai, 8) == play(
        agent(babyai, temperature=0.0), babyai, 8)

    batched = BatchedGatoAgent(model, processor, reach.observation_space, reach.action_space, num_rows=1,
                               temperature=1.0, continuous_temperature=0.0, history_steps=1, prompt_tokens=0)
    assert batched.action_temperature == 0.0
    assert action_temperature(reach.action_space, 1.0, None) == 1.0
    assert action_temperature(babyai.action_space, 1.0, 0.0) == 1.0
    assert action_temperature(reach.action_space, 1.0, 0.5) == 0.5
    for bad in (-1.0, float("inf"), True):
        with pytest.raises(ValueError, match="continuous_temperature: expected 0"):
            agent(reach, continuous_temperature=bad)


def test_quick_demo_collects_trains_evaluates_and_reports(collected, expert_cache, tmp_path):
    data, _ = collected
    output = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "modeling_gato", "demo", "--quick", "--data", str(data), "--output-dir", str(output),
         "--minutes", "2", "--expert-cache", expert_cache],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = (output / "report.md").read_text()
    for heading in ("## Evaluation", "## Training", "## Captions", "## Text completions", "expert-normalized score",
                    "## Learning curve", "template prior", "best constant caption",
                    "90% of the episode samples packed from windows of 1 timestep(s)"):
        assert heading in report
    results = json.loads((output / "eval" / "eval_results.json").read_text())
    assert set(results["tasks"]) == set(json.loads((data / "manifest.json").read_text())["tasks"])
    for entry in results["tasks"].values():
        assert entry["normalized_score"] is None or np.isfinite(entry["normalized_score"])
    for name in ("eval/eval_scores.png", "eval/eval_results.md", "model/loss_curve.png", "model/model.safetensors",
                 "model/README.md", "learning_curve.png", "caption_grounding.json"):
        assert (output / name).exists(), name
    # the learning curve holds the held-out policy accuracy of every domain at every logged evaluation
    curve = json.loads((output / "learning_curve.json").read_text())
    assert curve and all(0 <= point["classic_accuracy"] <= 1 for point in curve)
    assert [p["tokens"] for p in curve] == sorted(p["tokens"] for p in curve)
    grounding = json.loads((output / "caption_grounding.json").read_text())
    assert set(grounding) >= {"model", "prior", "prior_caption", "best_constant", "best_constant_caption", "captions"}


def test_history_steps_keeps_the_prompt_and_the_last_timesteps_only():
    """`history_steps=2`: the window holds the prompt and the last 2 timesteps (the current one included), and the
    cache rebuilt at every cut gives the actions of a full recomputation."""
    model, processor = lively_model(), GatoProcessor()
    env = make_env("CartPole-v1")
    prompt = {"continuous_observations": [[0.0, 0.1, 0.2, 0.3]] * 5, "discrete_actions": [0, 1, 0, 1, 0]}
    runs = []
    for use_cache in (True, False):
        agent = GatoAgent(model, processor, env.observation_space, env.action_space, prompt=prompt,
                          history_steps=2, use_cache=use_cache)
        observation, _ = env.reset(seed=4)
        agent.reset(seed=4)
        actions = []
        for step in range(8):
            actions.append(int(agent.act(observation)))
            assert agent.steps[0] is agent.prompt_sample  # the prompt stays
            assert len(agent.steps) == 1 + min(step + 1, 2)  # the prompt, then at most 2 timesteps
            assert [len(s["input_ids"]) for s in agent.steps[1:]] == [6] * min(step + 1, 2)  # whole timesteps
            observation, _, terminated, truncated, _ = env.step(actions[-1])
            if terminated or truncated:
                break
        runs.append(actions)
    assert runs[0] == runs[1]
    with pytest.raises(ValueError, match="history_steps"):
        GatoAgent(model, processor, env.observation_space, env.action_space, history_steps=0)
