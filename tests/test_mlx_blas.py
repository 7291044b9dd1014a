"""MLX's BLAS (``nin.blas``): the library the suite chooses is the one the dynamic loader binds
MLX's ``cblas_sgemm`` to.  The witness is the loader itself (``LD_DEBUG=bindings``), not the
suite's report; each case runs in a fresh process, since the choice is made before MLX loads."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import available_or_skip


@pytest.fixture(autouse=True)
def _mlx():
    available_or_skip("mlx")


_PROBE = """
from nin import blas
from nin.frameworks import get_backend
get_backend("mlx")
import mlx.core as mx
mx.eval(mx.ones((64, 64)) @ mx.ones((64, 64)))
print(blas.chosen().path or "")
"""


def _bound_to(tmp_path: Path, choice: str) -> tuple[str, str]:
    """(what the suite says it chose, the library the loader bound libmlx's cblas_sgemm to)."""
    env = {**os.environ, "NIN_MLX_BLAS": choice, "LD_DEBUG": "bindings", "LD_DEBUG_OUTPUT": str(tmp_path / "ld")}
    run = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    chosen = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    pattern = re.compile(r"binding file \S*libmlx\.so \[0\] to (\S+) \[0\]: normal symbol `cblas_sgemm'")
    targets = {m.group(1) for log in tmp_path.glob("ld.*") for m in pattern.finditer(log.read_text(errors="replace"))}
    assert len(targets) == 1, f"libmlx.so's cblas_sgemm bound to {sorted(targets) or 'nothing'}"
    return chosen, targets.pop()


def test_reference_keeps_mlx_own_blas(tmp_path):
    chosen, bound = _bound_to(tmp_path, "reference")
    assert chosen == ""
    assert "mlx_cpu.libs/libblas" in bound, bound


def test_auto_binds_mlx_to_the_library_it_names(tmp_path):
    chosen, bound = _bound_to(tmp_path, "auto")
    if chosen:  # an optimized CBLAS was found (the current environment has Paddle's MKL-ML)
        assert os.path.realpath(bound) == os.path.realpath(chosen)
    else:
        assert "mlx_cpu.libs/libblas" in bound, bound


def test_an_explicit_path_is_the_one_bound(tmp_path):
    (tmp_path / "auto").mkdir()
    found, _ = _bound_to(tmp_path / "auto", "auto")
    if found:
        chosen, bound = _bound_to(tmp_path, found)
        assert os.path.realpath(chosen) == os.path.realpath(bound) == os.path.realpath(found)
    else:  # nothing to name here: naming MLX's own library is the same as "reference"
        mlx_own = next(Path(sys.prefix).glob("lib/python3*/site-packages/mlx_cpu.libs/libblas*"))
        chosen, bound = _bound_to(tmp_path, str(mlx_own))
        assert os.path.realpath(bound) == os.path.realpath(mlx_own)


@pytest.mark.parametrize("value", ["/nonexistent/libblas.so", "libc.so.6"])
def test_a_library_that_cannot_serve_is_refused_with_the_remedy(value):
    env = {**os.environ, "NIN_MLX_BLAS": value}
    run = subprocess.run(
        [sys.executable, "-m", "nin", "compare", "nin_mnist", "--backends", "mlx"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2, (run.returncode, run.stderr[-2000:])
    assert "Traceback" not in run.stderr
    # the host setting's own reason and remedy, not an import failure's "reinstall" advice
    assert f"nin compare: error: NIN_MLX_BLAS={value!r} cannot serve MLX's matrix products" in run.stderr
    assert "'reference' for MLX's own BLAS" in run.stderr
