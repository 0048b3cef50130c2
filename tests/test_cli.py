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
