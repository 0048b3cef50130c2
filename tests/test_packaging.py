"""The wheel: built from the source tree, installed into a fresh virtual environment, and tested there.

Missing package data and sub-packages are the commonest failures of a package like this one, and a test run from
the source tree (or against an editable install) never sees them. Here the wheel is built offline from a copy of
the tree (`pip wheel --no-build-isolation`: the build leaves nothing in the checkout), installed with `--no-deps`
into a fresh venv that sees the site-packages of the interpreter running the tests (the dependencies come from
there, be it the system's interpreter or a virtualenv; an editable install of the repository there must lose to the
wheel, and the tests check that it does), and every check below runs in that venv's interpreter, with the working
directory outside the repository and PYTHONPATH cleared.

`--system-site-packages` alone is not enough: a venv made from inside another virtualenv sees the *base*
interpreter's packages, not the outer virtualenv's. So the venv is made without it, and a `.pth` file in its
site-packages adds the running interpreter's site directories (`site.getsitepackages()`, and the user site where
that is on `sys.path`) after its own, with `site.addsitedir`, which also runs their `.pth` files (editable installs).
"""

import json
import os
import shutil
import site
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
PACKAGES = ("modeling_gato", "conversion")  # setup.py's find_packages(include=...); README documents both
BUILD_FILES = ("setup.py", "pyproject.toml", "setup.cfg", "MANIFEST.in", "README.md", "LICENSE")
IMPORT_LEVEL_TESTS = ("test_configuration_gato.py", "test_processing_gato.py")


def source_files() -> list[str]:
    """Every file of the shipped packages in the source tree (paths relative to the root, `/`-separated)."""
    files = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append(path.relative_to(ROOT).as_posix())
    return files


def modules() -> list[str]:
    """Every importable module of the shipped packages, from the source tree."""
    names = []
    for file in source_files():
        if file.endswith(".py"):
            name = file.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
            if not name.endswith("__main__"):
                names.append(name)
    return names


def clean_env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1", PIP_NO_INPUT="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def run(command: list[str], cwd: Path, timeout: int = 300, **env) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=clean_env(**env), timeout=timeout)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built offline from a copy of the build files and the package directories."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in BUILD_FILES:
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "--no-index", "-w",
         str(root / "dist")], cwd=source)
    wheels = list((root / "dist").glob("modeling_gato-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def outer_site_directories() -> list[str]:
    """The site directories of the interpreter running the tests, in its `sys.path` order.

    In the system's interpreter these are the system's site-packages; in a virtualenv, the virtualenv's (and the base
    interpreter's only where that virtualenv includes them).
    """
    directories = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        directories.append(site.getusersitepackages())
    on_path = [os.path.realpath(p) for p in sys.path]
    directories = [d for d in directories if os.path.isdir(d) and os.path.realpath(d) in on_path]
    assert directories, f"no site directory of {sys.executable} is on sys.path: {sys.path}"
    return sorted(dict.fromkeys(directories), key=lambda d: on_path.index(os.path.realpath(d)))


@pytest.fixture(scope="module")
def venv_python(wheel, tmp_path_factory) -> Path:
    """A venv that sees the running interpreter's packages, with the wheel installed; returns its interpreter."""
    directory = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(directory)
    python = directory / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    own = site_packages(python)
    lines = [f"import site; site.addsitedir({d!r})\n" for d in outer_site_directories()]
    (own / "outer_environment.pth").write_text("".join(lines))
    # the outer environment's pip, run by the venv's interpreter, installs into the venv
    run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall", str(wheel)],
        cwd=directory)
    return python


def site_packages(python: Path) -> Path:
    output = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=python.parent)
    return Path(output.stdout.strip())


def test_the_venv_uses_the_running_interpreters_dependencies(venv_python, tmp_path):
    """The venv's dependencies are the very files this interpreter imports: those of the virtualenv the suite runs in,
    not the base interpreter's (which a bare `--system-site-packages` venv would pick, or find nothing)."""
    check = "import importlib.util, json, sys; print(json.dumps({n: importlib.util.find_spec(n) and " \
            "importlib.util.find_spec(n).origin for n in sys.argv[1:]}))"
    names = ["torch", "transformers", "pytest", "pip"]
    seen = json.loads(run([str(venv_python), "-c", check, *names], cwd=tmp_path).stdout.strip().splitlines()[-1])
    here = json.loads(run([sys.executable, "-c", check, *names], cwd=tmp_path).stdout.strip().splitlines()[-1])
    assert all(here.values()), here
    assert seen == here, f"the venv imports {seen}, this interpreter ({sys.executable}) imports {here}"


def test_the_wheel_holds_every_module_and_asset(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [file for file in source_files() if file not in names]
    assert not missing, f"the wheel lacks {missing}"
    assert {"modeling_gato/assets/tokenizer/tokenizer.json", "modeling_gato/assets/tokenizer/tokenizer_config.json",
            "conversion/__init__.py", "modeling_gato/__main__.py"} <= names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "notebooks/", "outputs/"))]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "gato = modeling_gato.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_installed_wheel_wins_and_works_offline(venv_python, tmp_path):
    check = textwrap.dedent(
        """
        import importlib, json, sys
        from importlib import resources

        names = json.loads(sys.argv[1])
        files = {name: importlib.import_module(name).__file__ for name in names}
        tokenizer = resources.files("modeling_gato") / "assets" / "tokenizer"
        assets = sorted(p.name for p in tokenizer.iterdir())
        from modeling_gato import GatoProcessor
        processor = GatoProcessor()
        ids = processor(text="go to the red ball")["input_ids"][0].tolist()
        print(json.dumps({"files": files, "assets": assets, "ids": ids}))
        """
    )
    names = modules()
    assert {"modeling_gato", "modeling_gato.training.fewshot", "conversion", "conversion.convert_jat_dataset"} <= set(names)
    result = run([str(venv_python), "-c", check, json.dumps(names)], cwd=tmp_path)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    installed = site_packages(venv_python)
    for name, file in report["files"].items():
        path = Path(file).resolve()
        assert installed.resolve() in path.parents, f"{name} imported from {file}, not from the wheel in {installed}"
        assert ROOT not in path.parents, f"{name} imported from the source tree: {file}"
    shipped = sorted(Path(f).name for f in source_files() if f.startswith("modeling_gato/assets/tokenizer/"))
    assert report["assets"] == shipped
    from modeling_gato import GatoProcessor

    assert report["ids"] == GatoProcessor()(text="go to the red ball")["input_ids"][0].tolist()


def test_the_installed_command_lines_run(venv_python, tmp_path):
    help_text = run([str(venv_python), "-m", "modeling_gato", "--help"], cwd=tmp_path).stdout
    for command in ("collect", "scores", "train", "evaluate", "offline", "act", "adapt", "demo", "push"):
        assert command in help_text
    script = venv_python.parent / ("gato.exe" if os.name == "nt" else "gato")
    assert script.exists(), "the `gato` console script was not installed"
    assert "usage:" in run([str(script), "train", "--help"], cwd=tmp_path).stdout
    converter = run([str(venv_python), "-m", "conversion.convert_gato_torch_config", "--help"], cwd=tmp_path).stdout
    assert "usage:" in converter


def test_import_level_tests_pass_against_the_installed_wheel(venv_python, tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    for name in ("conftest.py", "gato_testing.py", *IMPORT_LEVEL_TESTS):
        shutil.copy2(TESTS / name, suite / name)
    (suite / "test_wheel_is_the_one_imported.py").write_text(textwrap.dedent(
        f"""
        from pathlib import Path

        import modeling_gato


        def test_modeling_gato_comes_from_the_wheel():
            path = Path(modeling_gato.__file__).resolve()
            assert Path({str(site_packages(venv_python).resolve())!r}) in path.parents, path
            assert Path({str(ROOT)!r}) not in path.parents, path
        """
    ))
    result = run([str(venv_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(suite),
                  str(suite)], cwd=suite, timeout=600)
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, result.stdout[-3000:]
    assert "skipped" not in summary, summary
