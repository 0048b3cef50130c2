import subprocess
import sys

import pytest

COMMANDS = ["collect", "scores", "train", "evaluate", "act", "adapt", "offline", "push", "demo"]


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "modeling_gato", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = run(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout and command in result.stdout


def test_top_level_help_lists_the_commands():
    result = run("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


def test_core_demo_runs_end_to_end(tmp_path):
    result = run("demo", "--core", "--output-dir", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "masked loss" in out and "generate:" in out
    assert "max |logit difference| = 0.00e+00" in out
    assert "| small | 8 | 24 | 768 | 3072 | 32 | 79M |" in out
    assert (tmp_path / "demo" / "model.safetensors").exists()


def test_bad_input_ends_with_a_one_line_error_not_a_traceback(tmp_path):
    (tmp_path / "manifest.json").write_text("{}")
    result = run("evaluate", "--model", "org/gato-small", "--data", str(tmp_path))  # a Hub id, nowhere to write
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "evaluate: error: --model" in result.stderr and "--output-dir" in result.stderr
    result = run("evaluate", "--model", str(tmp_path / "no" / "model"), "--data", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().endswith("error: argument --model: no such model directory: "
                                          f"{tmp_path / 'no' / 'model'} (nor a Hub id org/name) (see --help)")


def test_the_demo_learning_curve_weights_tasks_by_their_scored_action_tokens(tmp_path):
    """A domain's point is the mean of its tasks' held-out policy accuracy (and loss) weighted by the action tokens
    each rests on: a BabyAI held-out episode of 1 step must not weigh as much as one of 3 steps."""
    from types import SimpleNamespace

    from modeling_gato.cli.demo import learning_curve

    manifest = {"tasks": {"a": {"domain": "babyai"}, "b": {"domain": "babyai"}, "c": {"domain": "classic"}}}
    history = [{"step": 10, "eval_a_policy_accuracy": 0.0, "eval_a_policy_loss": 2.0, "eval_a_policy_tokens": 1,
                "eval_b_policy_accuracy": 1.0, "eval_b_policy_loss": 0.0, "eval_b_policy_tokens": 3,
                "eval_c_policy_accuracy": 0.5, "eval_c_policy_loss": 0.7},  # no count logged: weight 1
               {"step": 5, "loss": 3.0}]
    config = SimpleNamespace(batch_size=2, gradient_accumulation_steps=1, context_length=8)
    points = learning_curve(history, manifest, config, str(tmp_path / "curve.png"))
    assert points == [{"step": 10, "tokens": 160, "babyai_accuracy": 0.75, "classic_accuracy": 0.5,
                       "babyai_policy_loss": 0.5, "classic_policy_loss": 0.7}]
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_the_demo_names_reused_data_collected_otherwise():
    """A reused `collect` directory is named task by task where its recorded action noise or episode count differs
    from what the demo collects; discrete-action tasks never carry noise, a manifest written before the option
    counts as noise 0, and a task not registered here is not judged."""
    from modeling_gato.cli.demo import (
        DEMO_ACTION_NOISE,
        DEMO_STEPS_AFTER_SUCCESS,
        DEMO_TASK_EPISODES,
        collection_differences,
    )
    from modeling_gato.data.collect import CollectConfig

    box = {"type": "Box", "shape": [1], "low": [-3.0], "high": [3.0]}
    discrete = {"type": "Discrete", "n": 7, "start": 0}
    manifest = {"tasks": {
        "InvertedPendulum-v5": {"action_space": box, "episodes": 40},  # before the option: no "action_noise"
        "metaworld-reach-v3": {"action_space": {**box, "shape": [4]}, "action_noise": 0.0, "episodes": 40},
        "CartPole-v1": {"action_space": {**discrete, "n": 2}, "action_noise": 0.0, "episodes": 40},
        "BabyAI-GoToLocal-v0": {"action_space": discrete, "action_noise": 0.0, "episodes": 40},
        "converted-task": {"action_space": box, "action_noise": 0.3, "episodes": 3},
    }}
    assert DEMO_ACTION_NOISE == {"mujoco": 0.1} and DEMO_TASK_EPISODES == {"babyai": 1000, "metaworld": 200}
    assert DEMO_STEPS_AFTER_SUCCESS == {"metaworld": 60}
    demo = CollectConfig(episodes=40, action_noise=DEMO_ACTION_NOISE, task_episodes=DEMO_TASK_EPISODES,
                         steps_after_success=DEMO_STEPS_AFTER_SUCCESS)
    assert collection_differences(manifest, demo) == [
        "InvertedPendulum-v5: collected with action noise 0, the demo collects with 0.1",
        "metaworld-reach-v3: collected with whole episodes, the demo collects episodes ended 60 steps after success",
        "metaworld-reach-v3: 40 episodes collected, the demo collects 200",
        "BabyAI-GoToLocal-v0: 40 episodes collected, the demo collects 1000"]
    assert collection_differences(manifest, CollectConfig(episodes=40)) == []
    assert collection_differences(manifest, CollectConfig(episodes=40, action_noise=0.2)) == [
        "InvertedPendulum-v5: collected with action noise 0, the demo collects with 0.2",
        "metaworld-reach-v3: collected with action noise 0, the demo collects with 0.2"]
    noisy = {**manifest, "tasks": {**manifest["tasks"],  # random executed actions: discrete-action tasks only
                                   "CartPole-v1": {**manifest["tasks"]["CartPole-v1"], "action_epsilon": 0.3}}}
    assert collection_differences(noisy, CollectConfig(episodes=40, action_epsilon={"babyai": 0.3})) == [
        "CartPole-v1: collected with random actions at probability 0.3, the demo collects with 0",
        "BabyAI-GoToLocal-v0: collected with random actions at probability 0, the demo collects with 0.3"]
    cut = {**manifest, "tasks": {**manifest["tasks"],  # Meta-World episodes ended after success
                                 "metaworld-reach-v3": {**manifest["tasks"]["metaworld-reach-v3"], "steps_after_success": 20}}}
    assert collection_differences(cut, CollectConfig(episodes=40, steps_after_success={"metaworld": 20})) == []
    assert collection_differences(cut, CollectConfig(episodes=40)) == [
        "metaworld-reach-v3: collected with episodes ended 20 steps after success, the demo collects whole episodes"]
    assert collection_differences(manifest, CollectConfig(episodes=40, steps_after_success={"CartPole-v1": 3})) == [
        "CartPole-v1: collected with whole episodes, the demo collects episodes ended 3 steps after success"]
    assert collection_differences(manifest, CollectConfig(episodes=20, task_episodes={"CartPole-v1": 40})) == [
        f"{task}: 40 episodes collected, the demo collects 20"
        for task in ("InvertedPendulum-v5", "metaworld-reach-v3", "BabyAI-GoToLocal-v0")]
