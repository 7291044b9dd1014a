"""The tutorials in docs/: each one runs as a script and prints its key lines, still runs
with every framework hidden (its cells print notes instead), and converts to a notebook and
back without losing a cell."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import jupytext  # the dev extra's: a missing one fails the run rather than skipping its tests
import nbformat
import pytest

import nin

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIALS = sorted(path.name for path in DOCS.glob("[0-9][0-9]_*.py"))
FRAMEWORK_MODULES = tuple(nin.frameworks.framework_modules())

# Lines each tutorial must print, as (what it needs, text). "" needs nothing; a backend name
# needs that backend installed; "procfs" needs Linux's /proc/self/clear_refs.
EXPECTED: dict[str, list[tuple[str, str]]] = {
    "01_nin_explained.py": [
        ("", "conv0: 96 channels, kernel (11, 11), stride (4, 4), padding (0, 0)"),
        ("", "spec padding per side: 2, 2;  TensorFlow 'same': 1, 2"),
        ("", "1,992,166 parameters (7.60 MiB float32), 762.3 M multiply-accumulates"),
        ("", "convolution vs matrix product on the pixels: max|Δ| = "),
        ("", "parameters either way: 4 × 6 + 4 = 28"),
        ("", "the AlexNet-style head alone has 1,614× the parameters of NiN's classifier block"),
        ("", "nin_d2l accepts any input from 67×67 up"),
        ("", "nin_d2l_fc at 256×256: nin_d2l_fc has a fully connected head sized for 224×224 inputs"),
        ("", "every available backend matches the NumPy reference within 0.0001"),
        ("torch", "read off a live PyTorch model: the same shapes and parameter counts"),
        ("torch", "nn.Conv2d(kernel_size=1) vs nn.Linear on permuted pixels: max|Δ| = "),
        *((b, f"=== {b}: nin/frameworks/{b}/model.py") for b in nin.list_backends()),
    ],
    "02_d2l_exercises.py": [
        ("", "one more 1×1 layer in every block: +223,054 parameters"),
        ("", "3×3 instead of 1×1: 2.79× the parameters, 2.94× the MACs"),
        ("", "nin_d2l: a last-block cell sees 195×195 input pixels"),
        ("", "whole network: +3.1% parameters, -0.10% MACs"),
        ("", "class activation maps with the linear head: nin_d2l_fc ends in a fully connected head"),
        ("", "training step: about 4.57 GFLOPs per example"),
        ("", "block3.conv0 (conv 3×3 + relu): 9,600 values in, 250 out (38.4× fewer)"),
        ("", "wide, as nin_imagenet: 384 → 1024 → 1024 → 10"),
        ("torch", "1 vs 2 1×1 per block: "),
        ("torch procfs", "measured peak growth: "),
    ],
    "03_class_activation_maps.py": [
        ("", "nin_mnist: 104,266 parameters; last block output (10, 7, 7)"),
        ("", "class maps: (1000, 10, 7, 7) (examples, classes, height, width); logits: (1000, 10)"),
        ("", "max |mean of each map − logit| over 1000 test digits: "),
        ("", "the predicted class's map peaks inside the digit's bounding box for "),
        ("", "every available backend's class maps match the NumPy reference within 0.0001"),
        ("torch", "epoch 2: train loss "),
        ("torch", "with the initial, untrained weights: "),
    ],
    "04_data_parallel.py": [
        ("", "global batch 16 over 2 workers: worker 0 reads rows 0–7, worker 1 rows 8–15"),
        ("", "a last batch of 3 over 2 workers: 2 + 1 rows, one padding row of weight 0"),
        ("", "gradient of the batch vs the shards' weighted sum: max|Δ| = "),
        ("torch", "torch nin_tiny on synthetic (2 workers): test accuracy "),
        ("torch", "2 workers vs 1 process after one epoch (torch): max|Δw| = "),
        *((b, f"=== {b}: nin/frameworks/{b}/distributed.py") for b in nin.list_backends()),
    ],
}

# Command-line arguments per tutorial ({out}: a temporary folder for what it writes).
ARGS = {"03_class_activation_maps.py": ["--out", "{out}"], "04_data_parallel.py": ["--out", "{out}"]}

# Rows of the tables that compare backends: the backend's name, then its framework's version.
BACKEND_ROWS = ("01_nin_explained.py", "03_class_activation_maps.py")

# Runs a tutorial with every framework module hidden: importlib.util.find_spec reports a module
# whose sys.modules entry is None as missing, and importing it raises ImportError.
HIDE_FRAMEWORKS = f"""
import runpy, sys
for name in {FRAMEWORK_MODULES!r}:
    sys.modules[name] = None
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_tutorial(name: str, out: Path, hide_frameworks: bool = False) -> str:
    """Run docs/<name> from the repository root; return its stdout (fail with its output)."""
    env = dict(os.environ, MPLBACKEND="Agg")
    # one intra-op thread per process: beside other test processes, OpenMP threads that
    # outnumber the free cores spin and slow training several times over
    env.setdefault("OMP_NUM_THREADS", "1")
    prefix = [sys.executable, "-c", HIDE_FRAMEWORKS] if hide_frameworks else [sys.executable]
    done = subprocess.run(
        [*prefix, str(DOCS / name), *(arg.format(out=out) for arg in ARGS.get(name, []))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (
        f"docs/{name} exited with {done.returncode}\n--- stdout (end)\n{done.stdout[-3000:]}\n"
        f"--- stderr (end)\n{done.stderr[-3000:]}"
    )
    return done.stdout


def have() -> set[str]:
    names = set(nin.available_backends())
    if Path("/proc/self/clear_refs").exists():
        names.add("procfs")
    return names


def test_every_tutorial_is_listed_and_checked():
    assert TUTORIALS, f"no tutorials found in {DOCS}"
    readme = (DOCS / "README.md").read_text()
    assert [t for t in TUTORIALS if f"`{t}`" not in readme] == [], "docs/README.md must list every tutorial"
    assert sorted(EXPECTED) == TUTORIALS, "every tutorial needs its expected lines in tests/test_docs.py"


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_runs(name, tmp_path):
    out = run_tutorial(name, tmp_path)
    installed = have()
    missing = [
        f"{text!r} (needs {needs or 'nothing'})"
        for needs, text in EXPECTED[name]
        if set(needs.split()) <= installed and text not in out
    ]
    assert not missing, f"docs/{name} did not print:\n  " + "\n  ".join(missing) + f"\n--- stdout\n{out}"
    if name in BACKEND_ROWS:
        for backend in nin.available_backends():
            assert re.search(rf"^{backend}\s+{backend} ", out, re.M), f"docs/{name}: no table row for {backend}"
    if name == "03_class_activation_maps.py":
        pictures = sorted(p.name for p in tmp_path.iterdir())
        assert len([p for p in pictures if p.endswith(".png")]) == 4 and any(p.endswith(".gif") for p in pictures)


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_runs_without_frameworks(name, tmp_path):
    out = run_tutorial(name, tmp_path, hide_frameworks=True)
    assert "backends installed: none" in out
    assert "note: torch is not installed" in out
    missing = [text for needs, text in EXPECTED[name] if not needs and text not in out]
    assert not missing, f"docs/{name} without frameworks did not print: {missing}\n--- stdout\n{out}"


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_converts_to_notebook(name):
    notebook = jupytext.read(DOCS / name)
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds[0] == "markdown" and "code" in kinds, f"docs/{name}: expected a title cell, then code"
    ipynb = jupytext.writes(notebook, fmt="ipynb")
    nbformat.validate(nbformat.reads(ipynb, as_version=4))
    cells = [(c.cell_type, c.source) for c in notebook.cells]
    again = jupytext.reads(ipynb, fmt="ipynb")
    assert [(c.cell_type, c.source) for c in again.cells] == cells, f"docs/{name}: py → ipynb loses or changes cells"
    script = jupytext.reads(jupytext.writes(again, fmt="py:percent"), fmt="py:percent")
    assert [(c.cell_type, c.source) for c in script.cells] == cells, f"docs/{name}: ipynb → py changes cells"
