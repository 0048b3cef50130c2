"""The notebooks in `notebooks/` run end to end (nbclient, kernel python3) with tiny settings.

Each notebook's "parameters" cell (papermill's tag) is replaced by the settings below; everything is written under
the test's temporary directory (the kernel's working directory)."""

import os
import time

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(REPO, "notebooks")

TINY = {
    "quickstart.ipynb": """
hidden_size = 32
num_hidden_layers = 1
num_attention_heads = 2
head_dim = 16
intermediate_size = 64
max_position_embeddings = 128
max_new_tokens = 3
seed = 0
""",
    # BabyAI only: its expert is a planner (no PPO training, unlike CartPole's).
    "train_and_evaluate.ipynb": """
tasks = ["BabyAI-GoToRedBallGrey-v0"]
episodes = 3
score_episodes = 2
expert_steps = None
text_paragraphs = 10
captions_per_task = 4
max_steps = 2
batch_size = 2
context_length = 128
learning_rate = 1e-3
eval_task = "BabyAI-GoToRedBallGrey-v0"
eval_seed = 1000
max_episode_steps = 8
progress = False
work_dir = "train_and_evaluate"
""",
    "load_and_use.ipynb": """
model_dir = None
data_dir = None
work_dir = "load_and_use"
agent_task = "CartPole-v1"
agent_steps = 4
caption_task = "BabyAI-GoToRedBallGrey-v0"
max_new_tokens = 3
""",
}


def with_parameters(notebook, source: str):
    tagged = [cell for cell in notebook.cells if "parameters" in cell.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "each notebook has exactly one cell tagged 'parameters'"
    assert notebook.cells.index(tagged[0]) == next(i for i, c in enumerate(notebook.cells) if c.cell_type == "code")
    tagged[0].source = source.strip()
    return notebook


@pytest.mark.parametrize("name", sorted(TINY))
def test_notebook_runs_with_tiny_settings(name, tmp_path, monkeypatch):
    for package in ("gymnasium", "minigrid"):
        pytest.importorskip(package)
    path = os.path.join(NOTEBOOKS, name)
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "commit notebooks empty"
    with_parameters(notebook, TINY[name])
    # the kernel imports this checkout's modeling_gato, installed or not
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    start = time.time()
    client.execute()
    print(f"{name}: {time.time() - start:.1f} s")
    text = "\n".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )
    expected = {
        "quickstart.ipynb": ["loss on the action tokens", "patches:"],
        "train_and_evaluate.ipynb": ["BabyAI-GoToRedBallGrey-v0: return", "expert-normalized score", "2 steps"],
        "load_and_use.ipynb": ["GatoForCausalModeling", "generated_text", "tokens in the agent's context"],
    }[name]
    for snippet in expected:
        assert snippet in text, (snippet, text[-3000:])
