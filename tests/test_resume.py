"""Nothing lost: `evaluate` and `collect` resume after SIGKILL with the results of an uninterrupted run, a failing
environment fails one episode (not the run), and two runs cannot share an output directory."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from gato_testing import save_acting_model

from modeling_gato import GatoProcessor
from modeling_gato.utils.jobs import Journal, OutputLock, OutputLockedError, differences

gymnasium = pytest.importorskip("gymnasium")

TASKS = ["BabyAI-GoToRedBallGrey-v0", "CartPole-v1"]


# ---------------------------------------------------------------------------- journal and lock
def test_a_torn_last_line_is_cut_and_whole_records_are_kept(tmp_path):
    journal = Journal(str(tmp_path / "journal.jsonl"))
    journal.start({"configuration": {"seeds": [1, 2]}})
    journal.append({"seed": 1, "return": 1.5})
    journal.append({"seed": 2, "return": -0.25})
    whole = (tmp_path / "journal.jsonl").read_bytes()
    with open(tmp_path / "journal.jsonl", "ab") as f:
        f.write(b'{"seed": 3, "ret')  # a write cut short by a kill
    header, records = journal.read()
    assert header == {"configuration": {"seeds": [1, 2]}}
    assert records == [{"seed": 1, "return": 1.5}, {"seed": 2, "return": -0.25}]
    assert (tmp_path / "journal.jsonl").read_bytes() == whole  # the next append starts on a fresh line
    journal.append({"seed": 3, "return": 0.0})
    assert journal.read()[1][-1] == {"seed": 3, "return": 0.0}


def test_differences_name_each_changed_key():
    recorded = {"seeds": [1, 2], "tasks": ("a",), "temperature": 0.0}
    assert differences(recorded, {"seeds": [1, 2], "tasks": ["a"], "temperature": 0.0}) == []
    assert differences(recorded, {"seeds": [1, 2, 3], "tasks": ["a"], "temperature": 0.0}) == [
        "seeds: [1, 2] -> [1, 2, 3]"]


def test_a_live_lock_is_refused_with_its_owner_and_a_dead_one_is_taken_over(tmp_path):
    path = str(tmp_path / "out.lock")
    with OutputLock(path, "first run"):
        with pytest.raises(OutputLockedError, match=f"pid {os.getpid()} on .*first run"):
            OutputLock(path, "second run").acquire()
    assert not os.path.exists(path)  # released
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    with open(path, "w") as f:
        json.dump({"pid": int(dead.stdout), "host": socket.gethostname(), "command": "killed run"}, f)
    with OutputLock(path, "resumed run"):
        assert json.load(open(path))["pid"] == os.getpid()


# ---------------------------------------------------------------------------- a failing environment
STEP_RAISES, NAN_OBSERVATION, RESET_RAISES = 1001, 1003, 1004


class FailingCartPole(gymnasium.Wrapper):
    """CartPole whose episode of seed 1001 raises at step 3, of seed 1003 returns a NaN observation at step 2, and
    whose reset with seed 1004 raises (a simulator blowing up, a level that fails to generate)."""

    def __init__(self, render_mode=None):
        super().__init__(gymnasium.make("CartPole-v1", render_mode=render_mode))

    def reset(self, *, seed=None, options=None):
        self.episode_seed, self.steps = seed, 0
        if seed == RESET_RAISES:
            raise RuntimeError("the level failed to generate")
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        self.steps += 1
        observation, reward, terminated, truncated, info = self.env.step(action)
        if self.episode_seed == STEP_RAISES and self.steps == 3:
            raise RuntimeError("the simulation diverged")
        if self.episode_seed == NAN_OBSERVATION and self.steps == 2:
            observation = observation * np.nan
        return observation, reward, terminated, truncated, info


@pytest.fixture
def failing_task(monkeypatch):
    from modeling_gato.envs.tasks import TASKS as REGISTRY
    from modeling_gato.envs.tasks import TaskSpec

    env_id = "modeling_gato_tests/FailingCartPole-v0"
    if env_id not in gymnasium.registry:
        gymnasium.register(env_id, entry_point=FailingCartPole)
    spec = TaskSpec("FailingCartPole", "classic", env_id, "sb3_ppo")
    monkeypatch.setitem(REGISTRY, spec.name, spec)
    return spec


SEEDS = list(range(1000, 1006))


def _expected_failures(results):
    failed = {r["seed"]: r for r in results if r.get("error")}
    assert sorted(failed) == [STEP_RAISES, NAN_OBSERVATION, RESET_RAISES]
    assert failed[STEP_RAISES]["error"] == "RuntimeError: the simulation diverged"
    assert failed[STEP_RAISES]["length"] == 2 and failed[STEP_RAISES]["return"] is None
    assert "non-finite observation" in failed[NAN_OBSERVATION]["error"] and failed[NAN_OBSERVATION]["length"] == 1
    assert failed[RESET_RAISES]["error"] == "RuntimeError: the level failed to generate"
    assert failed[RESET_RAISES]["length"] == 0


def test_a_failing_environment_fails_its_episode_only_one_at_a_time_and_vectorized(failing_task):
    from modeling_gato.acting.rollouts import random_policy, run_episodes

    one = run_episodes(failing_task, random_policy, SEEDS, num_envs=1, max_episode_steps=20, progress=False)
    three = run_episodes(failing_task, random_policy, SEEDS, num_envs=3, max_episode_steps=20, progress=False)
    assert one == three
    _expected_failures(one)
    # the other episodes are exactly those of the plain environment
    healthy = [s for s in SEEDS if s not in (STEP_RAISES, NAN_OBSERVATION, RESET_RAISES)]
    plain = run_episodes("CartPole-v1", random_policy, healthy, num_envs=2, max_episode_steps=20, progress=False)
    assert [r for r in one if not r.get("error")] == plain
    with pytest.raises(RuntimeError, match="diverged"):
        run_episodes(failing_task, random_policy, SEEDS, num_envs=2, max_episode_steps=20, progress=False,
                     strict=True)


def test_a_failing_environment_does_not_disturb_the_batched_agent(failing_task, model, processor):
    from modeling_gato.acting.rollouts import gato_policy, run_episodes

    one = run_episodes(failing_task, gato_policy(model, processor, failing_task, num_envs=1, batched=False), SEEDS,
                       num_envs=1, max_episode_steps=8, progress=False)
    batched = run_episodes(failing_task, gato_policy(model, processor, failing_task, num_envs=3), SEEDS, num_envs=3,
                           max_episode_steps=8, progress=False)
    assert one == batched
    _expected_failures(one)


def test_evaluate_counts_failed_episodes_and_goes_on(failing_task, collected, tmp_path, model):
    from modeling_gato.evaluation.evaluate import evaluate, results_table

    data, _ = collected
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    shutil.copytree(copy / "episodes" / "CartPole-v1", copy / "episodes" / failing_task.name)
    for name in ("manifest.json", "scores.json"):
        content = json.loads((copy / name).read_text())
        entries = content["tasks"] if name == "manifest.json" else content
        entries[failing_task.name] = entries["CartPole-v1"]
        (copy / name).write_text(json.dumps(content))
    runs = [evaluate(model, GatoProcessor(), str(copy), str(tmp_path / f"eval{n}"), tasks=[failing_task.name],
                     episodes=len(SEEDS), seed=SEEDS[0], num_envs=n, max_episode_steps=8, baselines=("random",),
                     offline=False, resamples=200, progress=False) for n in (1, 3)]
    for results in runs:
        for entry in (results["tasks"][failing_task.name], results["baselines"]["random"][failing_task.name]):
            _expected_failures(entry["episodes"])
            assert entry["errors"] == 3
            completed = [e["return"] for e in entry["episodes"] if not e.get("error")]
            assert entry["mean_return"] == pytest.approx(np.mean(completed))
            assert len(entry["episode_scores"]) == 3
        table = results_table(results)
        assert "(3 episodes failed)" in table
        assert f"FailingCartPole / random / seed {STEP_RAISES}: RuntimeError: the simulation diverged" in table
    assert runs[0]["tasks"] == runs[1]["tasks"]


# ---------------------------------------------------------------------------- killed and resumed
def _wait_for(condition, process, what: str, timeout: float = 600) -> None:
    """Poll until `condition()` (no timing assumption: only a guard against a hung process)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the process ended (status {process.returncode}) before {what}: "
                                 f"{process.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _lines(path) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def _cli(arguments, cwd=None, check=True):
    result = subprocess.run([sys.executable, "-m", "modeling_gato", *arguments], capture_output=True, text=True,
                            cwd=cwd, timeout=900)
    if check:
        assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model")
    save_acting_model(directory)
    return directory


def _results(directory):
    results = json.loads((directory / "eval_results.json").read_text())
    for key in ("seconds", "model_seconds"):
        results.pop(key)
    return results


def test_evaluate_killed_and_rerun_equals_an_uninterrupted_run(collected, saved_model, tmp_path):
    data, _ = collected
    arguments = ["evaluate", "--model", str(saved_model), "--data", str(data), "--tasks", *TASKS, "--episodes", "4",
                 "--num-envs", "2", "--max-episode-steps", "12", "--baselines", "random", "nearest", "--no-card",
                 "--no-offline"]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    _cli([*arguments, "--output-dir", str(whole)])

    process = subprocess.Popen([sys.executable, "-m", "modeling_gato", *arguments, "--output-dir", str(resumed)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    journal = resumed / "eval_journal.jsonl"
    _wait_for(lambda: _lines(journal) >= 1 + 6, process, "six journaled episodes")
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (resumed / "eval_results.json").exists(), "the run ended before the kill: nothing was resumed"
    assert (resumed / ".lock").exists()  # the killed run's lock, stale now
    done = _lines(journal) - 1
    assert 6 <= done < 2 * 3 * 4

    _cli([*arguments, "--output-dir", str(resumed)])
    assert _results(resumed) == _results(whole)
    assert (resumed / "eval_episodes.jsonl").read_text() == (whole / "eval_episodes.jsonl").read_text()
    assert _lines(journal) == 1 + 2 * 3 * 4  # every episode once: the finished ones were not replayed
    assert not (resumed / ".lock").exists()

    # a torn last line (a kill in the middle of a write) is dropped, and the results stay the same
    with open(journal, "ab") as f:
        f.write(b'{"policy": "model", "task": "CartPole-v1", "se')
    _cli([*arguments, "--output-dir", str(resumed)])
    assert _results(resumed) == _results(whole)

    # another configuration in the same directory is refused, in one line naming what differs; --fresh starts over
    five = [("5" if word == "4" else word) for word in arguments]
    refused = _cli([*five, "--output-dir", str(resumed)], check=False)
    assert refused.returncode == 2
    message = refused.stderr.strip().splitlines()[-1]  # (above it: the model's loading bar)
    assert message.startswith("python -m modeling_gato evaluate: error: ") and "--fresh" in message
    assert "seeds: [1000, 1001, 1002, 1003] -> [1000, 1001, 1002, 1003, 1004]" in message
    _cli([*five, "--output-dir", str(resumed), "--fresh"])
    assert json.loads((resumed / "eval_results.json").read_text())["episodes"] == 5


def test_a_second_evaluate_on_the_same_directory_is_refused(collected, saved_model, tmp_path):
    data, _ = collected
    output = tmp_path / "eval"
    with OutputLock(str(output / ".lock"), "a first evaluation"):
        refused = _cli(["evaluate", "--model", str(saved_model), "--data", str(data), "--tasks", "CartPole-v1",
                        "--episodes", "1", "--baselines", "--output-dir", str(output)], check=False)
    assert refused.returncode == 2
    assert f"held by pid {os.getpid()}" in refused.stderr and "a first evaluation" in refused.stderr


COLLECT = ["collect", "--output-dir", "data", "--tasks", "BabyAI-GoToRedBallGrey-v0", "BabyAI-GoToLocal-v0",
           "--episodes", "2", "--score-episodes", "2", "--text-paragraphs", "10", "--captions-per-task", "6"]


def _timeless(text: str) -> str:
    """`text` with its timestamps (when a task was measured, when the directory was created) masked: two
    uninterrupted runs differ in those only."""
    masked = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>", text)
    return masked.replace("<time> to <time>", "<time>")  # the card's "measured A to B" when A != B


def _same_directories(first, second):
    from datasets import load_from_disk

    sources = [os.path.join("episodes", task) for task in ("BabyAI-GoToRedBallGrey-v0", "BabyAI-GoToLocal-v0")]
    for source in [*sources, "text", "captions", "vqa"]:
        a, b = load_from_disk(str(first / source)), load_from_disk(str(second / source))
        assert a.features == b.features and _timeless(a.info.description) == _timeless(b.info.description)
        assert a.data.table.equals(b.data.table), source
    for name in ("scores.json", "manifest.json", "README.md"):
        assert _timeless((first / name).read_text()) == _timeless((second / name).read_text()), name
    assert sorted(os.listdir(first)) == sorted(os.listdir(second))


def test_collect_killed_and_rerun_equals_an_uninterrupted_run(tmp_path):
    pytest.importorskip("minigrid")
    (tmp_path / "whole").mkdir()
    (tmp_path / "resumed").mkdir()
    _cli(COLLECT, cwd=tmp_path / "whole")

    process = subprocess.Popen([sys.executable, "-m", "modeling_gato", *COLLECT], cwd=tmp_path / "resumed",
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    partial = tmp_path / "resumed" / "data.partial"
    first = partial / ".collect" / "BabyAI-GoToRedBallGrey-v0" / "task.json"
    _wait_for(first.is_file, process, "the first task's data")
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "resumed" / "data").exists()  # train never sees a half directory
    assert not (partial / "manifest.json").exists(), "the run ended before the kill: nothing was resumed"
    kept = (partial / "episodes" / "BabyAI-GoToRedBallGrey-v0").stat().st_ino

    _cli(COLLECT, cwd=tmp_path / "resumed")  # takes the killed run's stale lock over, keeps its finished task
    assert sorted(os.listdir(tmp_path / "resumed")) == ["data"]
    assert (tmp_path / "resumed" / "data" / "episodes" / "BabyAI-GoToRedBallGrey-v0").stat().st_ino == kept
    _same_directories(tmp_path / "whole" / "data", tmp_path / "resumed" / "data")

    # another configuration over an interrupted run is refused in one line; --fresh discards it
    state = tmp_path / "resumed" / "again.partial" / ".collect"
    state.mkdir(parents=True)
    (state / "collect.json").write_text(json.dumps(
        {"configuration": {"tasks": ["BabyAI-GoToLocal-v0"], "episodes": 2, "score_episodes": 2, "seed": 0,
                           "text_paragraphs": 10, "captions_per_task": 6, "expert_steps": None},
         "versions": {}, "created": "x"}))
    again = ["collect", "--output-dir", "again", *COLLECT[3:]]
    refused = _cli(again, cwd=tmp_path / "resumed", check=False)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "tasks: ['BabyAI-GoToLocal-v0'] -> ['BabyAI-GoToRedBallGrey-v0', 'BabyAI-GoToLocal-v0']" in refused.stderr
    _cli([*again, "--fresh"], cwd=tmp_path / "resumed")
    assert sorted(json.loads((tmp_path / "resumed" / "again" / "manifest.json").read_text())["tasks"]) == sorted(
        COLLECT[4:6])


def test_a_second_collect_on_the_same_output_is_refused(tmp_path):
    with OutputLock(str(tmp_path / "data.lock"), "a first collection"):
        refused = _cli(COLLECT, cwd=tmp_path, check=False)
    assert refused.returncode == 2
    assert f"held by pid {os.getpid()}" in refused.stderr and "a first collection" in refused.stderr
    assert not (tmp_path / "data.partial").exists()
