"""The package's shape, read from its imports (`ast`, nothing is imported): the folders are the stages data flows
through, each importing only the stages below it, with no import circles; the package root holds exactly the
remote code a saved model carries, which imports nothing else of the package.

    model (package root) < utils < envs < hub < data < acting < evaluation < training < cli

Imports inside functions count as much as those at the top: a lazy import that reaches up is still a stage that
depends on a later one.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "modeling_gato"
STAGES = ["model", "utils", "envs", "hub", "data", "acting", "evaluation", "training", "cli"]
REMOTE_CODE = {"configuration_gato", "modeling_gato", "processing_gato", "image_processing_gato", "agent",
               "acting_utils", "pipelines"}
FRONT_DOOR = {"modeling_gato", "modeling_gato.__main__"}  # __init__ re-exports, __main__ runs the CLI


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()):
        return parts[1]
    return "model"


def package_imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, module) for every import of a `modeling_gato` module in the file, relative ones resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "modeling_gato":
                continue
            for alias in node.names:  # `from . import x` / `from .data import collect` import modules
                candidate = f"{target}.{alias.name}"
                is_module = (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).exists() or (
                    PACKAGE.parent / candidate.replace(".", "/")).is_dir()
                found.append((node.lineno, candidate if is_module else target))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "modeling_gato"]
    return found


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def graph() -> dict[str, set[str]]:
    return {name: {target for _, target in package_imports(path) if target != name} for name, path in MODULES.items()}


def test_the_stages_are_the_package_s_folders():
    folders = {path.name for path in PACKAGE.iterdir() if path.is_dir() and (path / "__init__.py").exists()}
    assert folders == set(STAGES[1:])
    root = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert root == REMOTE_CODE, "the package root holds the remote code a saved model carries, and nothing else"


def reaching_up(name: str, path: pathlib.Path) -> list[str]:
    """The imports of module `name` (file `path`) from a later stage than its own."""
    return [f"{path.relative_to(PACKAGE.parent)}:{line} ({stage(name)}) imports {target} ({stage(target)})"
            for line, target in package_imports(path) if STAGES.index(stage(target)) > STAGES.index(stage(name))]


def test_no_stage_imports_a_later_stage():
    violations = [v for name, path in MODULES.items() if name not in FRONT_DOOR for v in reaching_up(name, path)]
    assert not violations, "a stage reaches up:\n" + "\n".join(violations)


def test_the_remote_code_imports_only_itself():
    for name in REMOTE_CODE:
        for line, target in package_imports(MODULES[f"modeling_gato.{name}"]):
            assert target.removeprefix("modeling_gato.") in REMOTE_CODE, f"{name}.py:{line} imports {target}"


def test_no_import_circles():
    edges = graph()
    cycles, state = [], {}

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if target not in edges:
                continue
            if state.get(target) == "open":
                cycles.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target not in state:
                visit(target, trail + [target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import circles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("source, expected", [
    ("from ..envs.tasks import get_task\n", "modeling_gato.envs.tasks"),
    ("from . import collect\n", "modeling_gato.data.collect"),
    ("from ..agent import GatoAgent\n", "modeling_gato.agent"),
    ("import modeling_gato.training.train\n", "modeling_gato.training.train"),
])
def test_imports_are_resolved_as_python_does(tmp_path, monkeypatch, source, expected):
    """The checker itself: relative imports from `data/` resolve to the modules Python would load."""
    path = PACKAGE / "data" / "collect.py"
    monkeypatch.setattr(pathlib.Path, "read_text", lambda self, *a, **k: source)
    assert [target for _, target in package_imports(path)] == [expected]


def test_the_checker_sees_a_stage_reaching_up(monkeypatch):
    """A lazy import of evaluation from envs (what `references` did with `metrics`) is reported; one from below
    is not."""
    path = MODULES["modeling_gato.envs.references"]
    source = "def f():\n    from ..evaluation.metrics import summarize\n    from ..utils.jobs import Journal\n"
    monkeypatch.setattr(pathlib.Path, "read_text", lambda self, *a, **k: source)
    assert reaching_up("modeling_gato.envs.references", path) == [
        "modeling_gato/envs/references.py:2 (envs) imports modeling_gato.evaluation.metrics (evaluation)"]
    assert stage("modeling_gato.agent") == "model" and stage("modeling_gato.cli") == "cli"
