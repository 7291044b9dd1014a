"""The suite's native NiN trains under the d2l book's own ``Classifier`` / ``Trainer``
(``examples/d2l_trainer.py``), one subprocess per framework: ``npx.set_np()``-style process
switches and ``TF_USE_LEGACY_KERAS`` must not leak into the pytest process."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "d2l_trainer.py"

# A smoke test: d2l's loop drives our model end to end (forward, loss, gradients, optimizer,
# validation, accuracy).  Short d2l runs of this NiN stay near chance (measured: 0.105 after 3
# epochs on 2,000 digits with MXNet), unlike `nin train`'s recipe, so no accuracy is claimed.
# d2l.torch is not offered: it imports torchvision, which cannot load beside this CPU torch.
EPOCHS, SUBSET = 1, 256


def _skip_reason(framework: str) -> str | None:
    if importlib.util.find_spec("d2l") is None:
        return "the d2l package is not installed"
    if importlib.util.find_spec(framework) is None:
        return f"{framework} is not installed"
    return None


@pytest.mark.parametrize("framework", ["mxnet", "jax", "tensorflow"])
def test_d2l_trainer_drives_native_nin(framework):
    reason = _skip_reason(framework)
    if reason:
        pytest.skip(reason)
    env = dict(os.environ, MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="3")
    env.setdefault("OMP_NUM_THREADS", "1")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--framework", framework, "--epochs", str(EPOCHS), "--subset", str(SUBSET)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    match = re.search(r"^val_acc=([0-9.]+)$", done.stdout, re.M)
    assert match, done.stdout
    assert 0.0 <= float(match.group(1)) <= 1.0
