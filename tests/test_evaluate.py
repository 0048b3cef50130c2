"""`evaluate`: the model beside random, expert and 1-NN on the same seeds, the numbers people report, artefacts."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from gato_testing import load_benchmark, save_acting_model

from modeling_gato import GatoProcessor
from modeling_gato.evaluation.evaluate import BASELINES, compare_with_baseline, evaluate, reference_of, results_table

pytest.importorskip("minigrid")
pytest.importorskip("metaworld")

TASKS = ["BabyAI-GoToRedBallGrey-v0", "CartPole-v1"]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model")
    model = save_acting_model(directory)
    (directory / "README.md").write_text("---\nlicense: apache-2.0\n---\n\n# A tiny Gato\n\nTrained for a test.\n")
    return model, directory


@pytest.fixture(scope="module")
def evaluated(collected, expert_cache, saved_model, tmp_path_factory):
    data, _ = collected
    model, directory = saved_model
    output = tmp_path_factory.mktemp("eval")
    results = evaluate(model, GatoProcessor(), str(data), str(output), tasks=TASKS, episodes=3, num_envs=3,
                       max_episode_steps=12, videos=1, model_dir=str(directory), expert_cache=expert_cache,
                       resamples=300, progress=False)
    return results, output, data, directory


def test_every_policy_plays_the_same_seeds_and_is_normalized_with_the_stored_reference(evaluated):
    results, _, data, _ = evaluated
    scores = json.loads((data / "scores.json").read_text())
    for task in TASKS:
        expert, random = scores[task]["expert"]["mean_return"], scores[task]["random"]["mean_return"]
        entries = [results["tasks"][task]] + [results["baselines"][name][task] for name in BASELINES]
        for entry in entries:
            assert [e["seed"] for e in entry["episodes"]] == [1000, 1001, 1002]
            returns = np.array([e["return"] for e in entry["episodes"]])
            assert entry["mean_return"] == pytest.approx(returns.mean())
            assert entry["normalized_score"] == pytest.approx((returns.mean() - random) / (expert - random))
            assert entry["episode_scores"] == pytest.approx(list((returns - random) / (expert - random)))
            low, high = entry["normalized_ci"]
            assert min(entry["episode_scores"]) - 1e-9 <= low <= entry["normalized_score"] <= high
            assert high <= max(entry["episode_scores"]) + 1e-9
    # BabyAI reports success (reward > 0); CartPole has none
    assert results["tasks"]["BabyAI-GoToRedBallGrey-v0"]["success_rate"] is not None
    assert results["tasks"]["CartPole-v1"]["success_rate"] is None
    # the expert really is the expert: BabyAI's bot succeeds, CartPole's PPO keeps the pole up for the 12 steps
    assert results["baselines"]["expert"]["BabyAI-GoToRedBallGrey-v0"]["success_rate"] == 1.0
    assert results["baselines"]["expert"]["CartPole-v1"]["mean_return"] == 12.0


def test_summary_counts_and_iqm_follow_the_per_task_scores(evaluated):
    results, *_ = evaluated
    overall = results["summary"]["overall"]
    means = [results["tasks"][t]["normalized_score"] for t in TASKS]
    assert overall["tasks"] == 2 and overall["mean"] == pytest.approx(np.mean(means))
    assert overall["at_least_50"] == sum(m >= 0.5 for m in means)
    assert overall["at_least_80"] == sum(m >= 0.8 for m in means)
    pooled = np.sort(np.concatenate([results["tasks"][t]["episode_scores"] for t in TASKS]))
    assert overall["iqm"] == pytest.approx(pooled[1:-1].mean())  # 6 episodes: int(0.25 * 6) = 1 cut each end
    assert set(results["summary"]["domains"]) == {"babyai", "classic"}
    assert set(results["baseline_summaries"]) == set(BASELINES)
    # every episode is scored, so the paired difference is the difference of the two IQMs, over all 6 seeds
    for name in BASELINES:
        comparison = results["comparisons"][name]
        assert comparison["overall"]["difference"] == pytest.approx(
            overall["iqm"] - results["baseline_summaries"][name]["overall"]["iqm"])
        assert comparison["overall"]["episodes"] == 6 and set(comparison["domains"]) == {"babyai", "classic"}
        low, high = comparison["overall"]["ci"]
        assert low <= comparison["overall"]["difference"] <= high
    table = results_table(results)
    assert "Model minus each baseline: IQM difference [95% CI], paired on the seeds both played" in table
    assert "| baseline | **all** | babyai | classic |" in table and "\n| 1-NN | " in table


def test_artefacts_per_episode_json_videos_table_and_model_index(evaluated):
    from huggingface_hub import ModelCard

    results, output, _, directory = evaluated
    lines = [json.loads(line) for line in (output / "eval_episodes.jsonl").read_text().splitlines()]
    assert len(lines) == len(TASKS) * (1 + len(BASELINES)) * 3
    assert {line["policy"] for line in lines} == {"model", *BASELINES}
    assert all({"seed", "return", "length", "success", "normalized_score"} <= set(line) for line in lines)
    recorded = [line["video"] for line in lines if "video" in line]
    assert recorded == ["videos/BabyAI-GoToRedBallGrey-v0-seed1000.gif", "videos/CartPole-v1-seed1000.gif"]
    assert all((output / path).exists() for path in recorded)  # relative to the output directory
    videos = sorted(p.name for p in (output / "videos").iterdir())
    assert videos == ["BabyAI-GoToRedBallGrey-v0-seed1000.gif", "CartPole-v1-seed1000.gif"]
    table = (output / "eval_results.md").read_text()
    for text in ("**Gato (this model)**", "| 1-NN |", "IQM [95% CI]", ">= 80%", "Offline action prediction",
                 "References (from `scores.json`)"):
        assert text in table
    assert (output / "eval_scores.png").stat().st_size > 10_000
    card = ModelCard.load(directory / "README.md")
    assert "Trained for a test." in card.text  # the body is kept
    values = {(r.dataset_type, r.metric_type): r.metric_value for r in card.data.eval_results}
    for task in TASKS:
        assert values[(task, "mean_reward")] == pytest.approx(results["tasks"][task]["mean_return"], abs=1e-4)
    # the card sets the model beside each baseline: its IQM and the paired difference
    nearest = results["comparisons"]["nearest"]["overall"]
    row = next(line for line in card.text.splitlines() if line.startswith("| 1-NN | "))
    assert row.endswith(f"| {nearest['difference']:+.3f} [{nearest['ci'][0]:+.3f}, {nearest['ci'][1]:+.3f}] | 6 |")


def test_batched_and_one_at_a_time_evaluation_agree(evaluated, saved_model, tmp_path):
    results, _, data, _ = evaluated
    model, _ = saved_model
    again = evaluate(model, GatoProcessor(), str(data), str(tmp_path), tasks=TASKS, episodes=3, num_envs=1,
                     max_episode_steps=12, baselines=(), offline=False, resamples=300, progress=False)
    for task in TASKS:
        batched = [{k: v for k, v in e.items() if k != "video"} for e in results["tasks"][task]["episodes"]]
        assert again["tasks"][task]["episodes"] == batched


def test_actions_are_sampled_by_default_as_the_paper_deploys_gato(evaluated, saved_model, tmp_path):
    """`evaluate` samples each action token (temperature 1) unless told `temperature=0`; the results and the table
    say which."""
    results, output, data, _ = evaluated
    assert results["temperature"] == 1.0
    assert "model actions sampled at temperature 1 " in (output / "eval_results.md").read_text()
    model, _ = saved_model
    greedy = evaluate(model, GatoProcessor(), str(data), str(tmp_path), tasks=TASKS[:1], episodes=3, num_envs=3,
                      max_episode_steps=12, baselines=(), offline=False, resamples=300, progress=False, temperature=0)
    assert greedy["temperature"] == 0
    assert "greedy model actions " in (tmp_path / "eval_results.md").read_text()


def test_continuous_temperature_takes_continuous_actions_greedily_and_samples_the_rest(evaluated, saved_model,
                                                                                        tmp_path):
    """`continuous_temperature=0` beside the default temperature 1: Meta-World reach plays the greedy evaluation's
    episodes, BabyAI the default sampled one's; the results and the table say so."""
    results, _, data, _ = evaluated
    model, _ = saved_model
    reach, babyai = "metaworld-reach-v3", TASKS[0]

    def run(name, tasks, **settings):
        return evaluate(model, GatoProcessor(), str(data), str(tmp_path / name), tasks=tasks, episodes=3, num_envs=3,
                        max_episode_steps=12, baselines=(), offline=False, resamples=300, progress=False, **settings)

    def episodes(result, task):
        return [{k: v for k, v in e.items() if k != "video"} for e in result["tasks"][task]["episodes"]]

    mixed = run("mixed", [babyai, reach], continuous_temperature=0)
    greedy, sampled = run("greedy", [reach], temperature=0), run("sampled", [reach])
    assert episodes(mixed, reach) == episodes(greedy, reach) != episodes(sampled, reach)
    assert episodes(mixed, babyai) == episodes(results, babyai)
    assert mixed["temperature"] == 1.0 and mixed["continuous_temperature"] == 0
    assert "model actions sampled at temperature 1 (continuous ones greedy)" in (tmp_path / "mixed" / "eval_results.md").read_text()
    with pytest.raises(ValueError, match="continuous_temperature: expected None"):
        run("bad", [reach], continuous_temperature=-1.0)


def _act(directory, data, task, *arguments):
    """`python -m modeling_gato act` in a fresh process: its header line and one line per episode."""
    result = subprocess.run([sys.executable, "-m", "modeling_gato", "act", "--model", str(directory), "--task", task,
                             "--data", str(data), *arguments], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    return lines[0], [line for line in lines if line.startswith("seed ")]


def _episode_lines(episodes):
    return [f"seed {e['seed']}: return {e['return']:.3f}, {e['length']} steps, "
            f"success {'n/a' if e['success'] is None else e['success']}" for e in episodes]


def test_act_plays_the_episodes_evaluate_reports(evaluated, saved_model, tmp_path):
    """`act` acts as `evaluate` does: the same seeds, sampled actions, the history and prompt the model trained with
    (its training_config.json) and the same batching, so the same seeds give the same episodes."""
    results, _, data, directory = evaluated
    header, lines = _act(directory, data, TASKS[0], "--episodes", "3", "--max-episode-steps", "12", "--num-envs", "3")
    assert header == (f"acting on the whole episode, a prompt of a quarter of the context from {data}, "
                      "actions sampled at temperature 1")
    assert lines == _episode_lines(results["tasks"][TASKS[0]]["episodes"])

    short = tmp_path / "short"  # the same weights, trained (says its config) on one-timestep windows: no prompt
    shutil.copytree(directory, short)
    (short / "training_config.json").write_text(json.dumps({"short_context_probability": 0.9}))
    header, lines = _act(short, data, "CartPole-v1", "--episodes", "3", "--seed", "7")
    assert header == "acting on the current timestep, no prompt, actions sampled at temperature 1"
    model, _ = saved_model
    expected = evaluate(model, GatoProcessor(), str(data), str(tmp_path / "eval"), tasks=["CartPole-v1"], episodes=3,
                        seed=7, num_envs=4, baselines=(), offline=False, progress=False, model_dir=str(short))
    assert expected["history_steps"] == 1 and expected["prompt_tokens"] == 0
    episodes = expected["tasks"]["CartPole-v1"]["episodes"]
    assert len({e["length"] for e in episodes}) > 1  # whole episodes: their lengths follow the actions taken
    assert lines == _episode_lines(episodes)


def test_a_reference_where_the_expert_is_not_better_is_refused(collected, tmp_path):
    data, _ = collected
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    scores = json.loads((copy / "scores.json").read_text())
    scores["CartPole-v1"]["expert"]["mean_return"] = scores["CartPole-v1"]["random"]["mean_return"]
    (copy / "scores.json").write_text(json.dumps(scores))
    with pytest.raises(ValueError, match="CartPole-v1.*not above"):
        reference_of("CartPole-v1", scores)
    with pytest.raises(ValueError, match="CartPole-v1"):
        evaluate(None, GatoProcessor(), str(copy), str(tmp_path / "eval"), tasks=["CartPole-v1"], progress=False)


def test_a_success_only_task_prints_n_a_and_still_counts():
    from modeling_gato.evaluation.metrics import summarize

    entry = {"domain": "babyai", "mean_return": 0.0, "std_return": 0.0, "success_rate": 0.5, "normalized_score": None,
             "normalized_ci": None, "episode_scores": None, "episodes": [], "expert_return": None,
             "random_return": None, "expert_success_rate": 1.0, "random_success_rate": 0.2}
    results = {"tasks": {"t": entry}, "baselines": {}, "summary": summarize({"t": entry}), "episodes": 2, "seed": 0,
               "env_seed": 1, "temperature": 0.0, "max_episode_steps": None}
    table = results_table(results)
    row = next(line for line in table.splitlines() if line.startswith("| t |"))
    assert row.endswith("| 50% | n/a |")
    assert results["summary"]["overall"]["tasks"] == 1 and results["summary"]["overall"]["tasks_scored"] == 0


def test_device_runs_model_episodes_combine_with_baselines_played_elsewhere(evaluated, tmp_path):
    # benchmarks/device_run/combine.py: the model's half of a run beside the baselines' half gives the run's own report
    import copy

    results, *_ = evaluated
    module = load_benchmark("device_run", "combine.py")
    model_only = json.loads(json.dumps(dict(results, baselines={}, baseline_summaries={}, comparisons={})))
    baselines = json.loads(json.dumps(results))
    combined = module.combine(model_only, baselines)
    # the same numbers (floats survive JSON exactly), recomputed from the episodes
    assert combined["baseline_summaries"] == json.loads(json.dumps(results["baseline_summaries"]))
    assert combined["comparisons"] == json.loads(json.dumps(results["comparisons"]))
    for key, value, message in (("num_envs", 1, "num_envs: the model was evaluated with 3, the baselines with 1"),
                                ("seed", 7, "seed: the model was evaluated with 1000"),
                                ("held_out", 5, "held_out: the model was evaluated with")):
        other = copy.deepcopy(baselines)
        other[key] = value
        with pytest.raises(ValueError, match=message):
            module.combine(model_only, other)
    other = copy.deepcopy(baselines)
    other["tasks"]["CartPole-v1"]["random_return"] += 1
    with pytest.raises(ValueError, match="CartPole-v1: random_return .* did not read the same scores.json"):
        module.combine(model_only, other)


def test_the_comparison_with_a_baseline_pairs_episodes_by_seed():
    def entry(domain, scores):
        return {"domain": domain, "episodes": [{"seed": seed, "normalized_score": score} for seed, score in scores]}

    model = {"t": entry("d", [(1, 0.9), (2, 0.5), (3, 0.7)]), "u": entry("e", [(1, 1.0)]),
             "v": entry("e", [(1, None)])}  # v: no reference, never compared
    baseline = {"t": entry("d", [(3, 0.2), (1, 0.4), (2, None)]),  # listed in another order; seed 2 failed
                "u": entry("e", [(1, 0.0)]), "v": entry("e", [(1, None)])}
    comparison = compare_with_baseline(model, baseline, resamples=200)
    # pairs: t (0.9, 0.4), (0.7, 0.2); u (1.0, 0.0); 3 values, IQM cuts none
    assert comparison["overall"]["episodes"] == 3
    assert comparison["overall"]["difference"] == pytest.approx((0.9 + 0.7 + 1.0) / 3 - (0.4 + 0.2 + 0.0) / 3)
    assert comparison["domains"]["d"]["difference"] == pytest.approx(0.5)
    assert comparison["domains"]["d"]["ci"] == pytest.approx([0.5, 0.5])  # both seeds 0.5 apart
    assert comparison["domains"]["e"]["difference"] == pytest.approx(1.0) and comparison["domains"]["e"]["episodes"] == 1
    assert compare_with_baseline({"v": model["v"]}, {"v": baseline["v"]}) == {"domains": {"e": None}, "overall": None}


@pytest.mark.parametrize(
    "overrides, message",
    [({"num_envs": 0}, "num_envs: expected at least 1"), ({"episodes": 0}, "episodes: expected at least 1"),
     ({"videos": -1}, "videos: expected 0 or more"), ({"max_episode_steps": 0}, "max_episode_steps: expected at least 1"),
     ({"baselines": ["oracle"]}, "unknown baseline 'oracle'"), ({"temperature": -0.5}, "temperature: expected 0"),
     ({"temperature": float("nan")}, "temperature: expected 0")],
)
def test_bad_arguments_are_refused_by_name(collected, tmp_path, overrides, message):
    data, _ = collected
    with pytest.raises(ValueError, match=message):
        evaluate(None, GatoProcessor(), str(data), str(tmp_path), **overrides)


def test_a_directory_without_scores_is_refused_with_a_hint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no scores.json; expected a directory written by"):
        evaluate(None, GatoProcessor(), str(tmp_path), str(tmp_path / "eval"))


def test_acting_settings_follow_the_models_training(tmp_path):
    """A model trained on short-context samples acts on the current timestep without a prompt unless told otherwise;
    any other model (or none) gets the paper's whole window with its prompt."""
    from modeling_gato.evaluation.evaluate import acting_settings

    short, paper = tmp_path / "short", tmp_path / "paper"
    for directory, probability in ((short, 0.5), (paper, 0.0)):
        directory.mkdir()
        (directory / "training_config.json").write_text(json.dumps({"short_context_probability": probability,
                                                                    "short_context_timesteps": 4}))
    assert acting_settings(None, None, str(short)) == {"history_steps": 1, "prompt_tokens": 0}
    assert acting_settings(None, 64, str(short)) == {"history_steps": 1, "prompt_tokens": 64}
    assert acting_settings(None, None, str(paper)) == {"history_steps": None, "prompt_tokens": None}
    assert acting_settings(None, None, None) == {"history_steps": None, "prompt_tokens": None}
    assert acting_settings(0, None, str(short)) == {"history_steps": None, "prompt_tokens": None}  # 0: whole window
    assert acting_settings(3, 0, str(paper)) == {"history_steps": 3, "prompt_tokens": 0}
    prompted = tmp_path / "prompted"  # short windows that started with a demonstration's end: acts after the same
    prompted.mkdir()
    (prompted / "training_config.json").write_text(json.dumps({"short_context_probability": 0.9,
                                                               "short_context_prompt_tokens": 48}))
    assert acting_settings(None, None, str(prompted)) == {"history_steps": 1, "prompt_tokens": 48}
    assert acting_settings(None, 0, str(prompted)) == {"history_steps": 1, "prompt_tokens": 0}
    # A checkpoint of `train` before 2026-12-05 holds no training_config.json: it acts as its run's finished model does.
    (short / "checkpoint-675").mkdir()
    assert acting_settings(None, None, str(short / "checkpoint-675") + "/") == {"history_steps": 1, "prompt_tokens": 0}
    (prompted / "checkpoint-10").mkdir()
    assert acting_settings(None, None, str(prompted / "checkpoint-10")) == {"history_steps": 1, "prompt_tokens": 48}
    # one that holds its own (as `train` writes them now) acts by it
    (short / "checkpoint-700").mkdir()
    (short / "checkpoint-700" / "training_config.json").write_text(json.dumps({"short_context_probability": 0.0}))
    assert acting_settings(None, None, str(short / "checkpoint-700")) == {"history_steps": None, "prompt_tokens": None}
    (short / "other").mkdir()  # any other directory without one: the paper's whole window
    assert acting_settings(None, None, str(short / "other")) == {"history_steps": None, "prompt_tokens": None}
    with pytest.raises(ValueError, match="--history-steps"):
        acting_settings(-1, None, None)
    with pytest.raises(ValueError, match="--prompt-tokens"):
        acting_settings(None, -2, None)


def test_a_hub_models_training_settings_come_from_its_repository(tmp_path):
    """For a Hub id, `act` and `evaluate` read `training_config.json` from the Hub through huggingface_hub's cache
    (here offline, the repository laid out in the cache as `hf_hub_download` leaves it); a repository without one, or
    an id that is neither cached nor reachable, gets the paper's whole window."""
    import os

    revision = "0" * 40
    cached = tmp_path / "hub" / "models--org--gato-short"
    (cached / "refs").mkdir(parents=True)
    (cached / "refs" / "main").write_text(revision)
    (cached / "snapshots" / revision).mkdir(parents=True)
    (cached / "snapshots" / revision / "training_config.json").write_text(json.dumps(
        {"short_context_probability": 0.9, "short_context_prompt_tokens": 48, "eval_episodes": 3}))
    script = ("from modeling_gato.evaluation.evaluate import acting_settings, _held_out\n"
              "print(acting_settings(None, None, 'org/gato-short'), _held_out('org/gato-short'))\n"
              "print(acting_settings(None, None, 'org/not-cached'), _held_out('org/not-cached'))\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["{'history_steps': 1, 'prompt_tokens': 48} 3",
                                       "{'history_steps': None, 'prompt_tokens': None} 1"]


def test_settings_travel_as_one_config_and_unknown_ones_are_named(collected, tmp_path):
    """`evaluate(..., config)` and `evaluate(..., **fields)` are the same call; a misspelt setting or a config of
    the wrong type is refused by name before any work starts."""
    from modeling_gato.evaluation.evaluate import EvaluateConfig

    data, _ = collected
    config = EvaluateConfig(tasks=["CartPole-v1"], episodes=0)
    with pytest.raises(ValueError, match="episodes: expected at least 1, got 0"):
        evaluate(None, GatoProcessor(), str(data), str(tmp_path), config)
    with pytest.raises(ValueError, match="episodes: expected at least 1, got -2"):
        evaluate(None, GatoProcessor(), str(data), str(tmp_path), config, episodes=-2)  # keywords override
    with pytest.raises(TypeError, match=r"unknown settings \['episode'\]"):
        evaluate(None, GatoProcessor(), str(data), str(tmp_path), episode=3)
    with pytest.raises(TypeError, match="config: expected EvaluateConfig .* got list"):
        evaluate(None, GatoProcessor(), str(data), str(tmp_path), ["CartPole-v1"])  # the old positional `tasks`
    assert EvaluateConfig.with_settings(config, {"episodes": 3}) == EvaluateConfig(tasks=["CartPole-v1"], episodes=3)
    assert config.episodes == 0  # the caller's config is not modified


def test_evaluation_never_trains_an_expert(collected, saved_model, tmp_path):
    """The expert baseline loads the expert `collect` trained; with an empty expert cache the evaluation stops,
    naming the command that trains it, and leaves the cache empty."""
    from modeling_gato.envs.experts import ExpertNotTrainedError

    data, _ = collected
    model, _ = saved_model
    empty = tmp_path / "experts"
    empty.mkdir()
    with pytest.raises(ExpertNotTrainedError, match=r"CartPole-v1: no trained expert .*`python -m modeling_gato "
                                                    r"collect --tasks CartPole-v1 --cache-dir"):
        evaluate(model, GatoProcessor(), str(data), str(tmp_path / "eval"), tasks=["CartPole-v1"], episodes=1,
                 baselines=["expert"], expert_cache=str(empty), max_episode_steps=5, offline=False, progress=False)
    assert list(empty.iterdir()) == []
