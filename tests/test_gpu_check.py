"""``benchmarks/gpu_check.sh`` and its helpers, proven without a GPU and without running the
whole check (minutes): its arguments, its plan of time limits, its prerequisite step on
interpreters that lack something, and the pieces its GPU steps rely on (the torch engine's
choice of collectives when workers share a GPU, the data-parallel parity's comparison).

The whole check in the GPU machine's package set is run by hand:
``bash benchmarks/gpu_stack_venv.sh /tmp/gpu-stack-venv`` and
``PYTHON=/tmp/gpu-stack-venv/bin/python bash benchmarks/gpu_check.sh OUTDIR`` (docs/environments.md).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from conftest import backend_or_skip

import nin

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
BUDGET_S = 8 * 60


def gpu_check(*args: str, python: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "PYTHONPATH")}
    env["PYTHON"] = python or sys.executable
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120)


def wrapper(folder: Path, body: str) -> str:
    """An executable standing in for the interpreter: ``body`` is its shell code."""
    path = folder / "python"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("script", ["gpu_check.sh", "gpu_stack_venv.sh"])
def test_scripts_are_valid_bash(script):
    done = subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("script", ["gpu_check.sh", "gpu_stack_venv.sh"])
def test_scripts_pass_shellcheck(script):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    done = subprocess.run(["shellcheck", str(ROOT / "benchmarks" / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_step_limits_add_up_to_under_eight_minutes():
    done = gpu_check("--plan")
    assert done.returncode == 0, done.stdout + done.stderr
    steps = dict(re.findall(r"^(\S+)\s+(\d+)s$", done.stdout, re.MULTILINE))
    grace = int(re.search(r"with (\d+)s to stop each step", done.stdout).group(1))
    assert set(steps) == {
        "prerequisites", "conformance-float32", "conformance-bf16", "compare", "bench-float32", "bench-bf16",
        "parity-torch", "parity-jax",
    }  # fmt: skip
    assert sum(int(s) + grace for s in steps.values()) < BUDGET_S, steps


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "OUTDIR is missing"),
        (("OUT", "--frobnicate"), "unknown option --frobnicate"),
        (
            ("OUT", "--require-gpu", "torch,tf"),
            "--require-gpu takes a comma-separated list of torch jax; got 'tf'",
        ),
        (("OUT", "--require-gpu"), "--require-gpu needs a list, e.g. --require-gpu torch,jax"),
        (("OUT", "--require-gpu", ","), "--require-gpu needs a list, e.g. --require-gpu torch,jax"),
        (("OUT", "OTHER"), "one OUTDIR only; got OUT and OTHER"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, args, message):
    done = subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=dict(os.environ, PYTHON="/nonexistent"),
    )
    first, *usage = done.stderr.splitlines()
    assert done.returncode == 2 and first == f"gpu_check.sh: {message}", done.stderr
    assert usage and all(line.startswith("bash benchmarks/gpu_check.sh") for line in usage), usage
    assert done.stdout == "" and list(tmp_path.iterdir()) == []


def test_an_unwritable_outdir_is_refused_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = gpu_check(str(blocker / "out"))
    assert done.returncode == 2, done.stderr
    assert (
        done.stderr.strip()
        == f"gpu_check.sh: cannot write to OUTDIR {blocker / 'out'}; give a folder you can create or write to"
    )


def test_a_missing_interpreter_is_named(tmp_path):
    done = gpu_check(str(tmp_path / "out"), python=str(tmp_path / "no-python"))
    assert done.returncode == 2
    assert f"no Python interpreter '{tmp_path / 'no-python'}'; set PYTHON" in done.stderr
    assert "STOPPED: the prerequisites are not met" in (tmp_path / "out" / "summary.md").read_text()


def test_an_interpreter_without_numpy_stops_the_check_naming_it(tmp_path):
    """``python -S`` sees no site-packages: no NumPy, no torch or JAX, no pip to install nin."""
    python = wrapper(tmp_path, f'exec "{sys.executable}" -S "$@"')
    done = gpu_check(str(tmp_path / "out"), python=python)
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert done.returncode == 2, done.stderr
    (row,) = [line for line in summary.splitlines() if line.startswith("| prerequisites |")]
    assert "failed: missing prerequisites: numpy (ModuleNotFoundError: No module named 'numpy')" in row
    assert "neither torch nor jax can be imported with its nin backend" in row
    assert "conformance" not in summary, "nothing may run after a missing prerequisite"


def test_prerequisites_from_links_and_a_required_gpu(tmp_path):
    """An interpreter where pip cannot install nin (as on a GPU machine without setuptools):
    nin comes from the folder of links, and ``--require-gpu torch`` fails naming why torch
    sees no GPU — or passes, on a machine where it sees one."""
    torch = backend_or_skip("torch")
    site = sysconfig.get_paths()["purelib"]  # without the editable install's .pth: no nin
    python = wrapper(
        tmp_path,
        'case "$*" in *"-m pip"*) echo "pip: not here" >&2; exit 1;; esac\n'
        f'PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{site}" exec "{sys.executable}" -S "$@"',
    )
    done = gpu_check(str(tmp_path / "out"), "--prerequisites-only", "--require-gpu", "torch", python=python)
    out = tmp_path / "out"
    assert "pip could not install nin here (install.log): importing it from links in" in done.stderr
    assert f"nin: {nin.__version__} from {ROOT / 'common'}" in (out / "env.txt").read_text()
    links = Path(re.search(r"links in (\S+)", done.stderr).group(1))
    assert not links.exists(), f"the folder of links {links} was left behind"
    (row,) = [line for line in (out / "summary.md").read_text().splitlines() if line.startswith("| prerequisites |")]
    if torch.gpu_available():
        assert done.returncode == 0 and "ok (GPU: torch" in row, done.stderr
        return
    assert done.returncode == 1, done.stderr
    assert "failed: --require-gpu torch: no GPU visible to torch: " in row
    import torch as framework

    if framework.version.cuda is None:
        assert f"torch {framework.__version__} is a CPU-only build (no CUDA)" in row


def test_torch_workers_sharing_a_gpu_use_gloo():
    """NCCL refuses two ranks on one device, so a host whose workers outnumber its GPUs uses
    gloo; one with a GPU per worker, NCCL.  A non-loopback coordinator without torchrun's
    ``LOCAL_WORLD_SIZE`` means one worker on this host."""
    backend_or_skip("torch")
    from nin.distributed import Cluster
    from nin.frameworks.torch.distributed import process_group_backend

    local = Cluster(0, 2, "127.0.0.1", 29500, device="gpu")
    remote = Cluster(0, 8, "10.0.0.1", 29500, device="gpu")
    assert process_group_backend(Cluster(0, 2, "127.0.0.1", 29500), gpus=0, env={}) == "gloo"
    assert process_group_backend(local, gpus=1, env={}) == "gloo"
    assert process_group_backend(local, gpus=2, env={}) == "nccl"
    assert process_group_backend(Cluster(0, 2, "localhost", 29500, device="gpu"), gpus=1, env={}) == "gloo"
    assert process_group_backend(remote, gpus=1, env={}) == "nccl"
    assert process_group_backend(remote, gpus=2, env={"LOCAL_WORLD_SIZE": "4"}) == "gloo"
    assert process_group_backend(remote, gpus=4, env={"LOCAL_WORLD_SIZE": "4"}) == "nccl"


def _parity_module():
    spec = importlib.util.spec_from_file_location("dp_parity", ROOT / "benchmarks" / "dp_parity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parity_compares_every_tensor_with_its_own_scale():
    """A small tensor off by 2e-4 of its own max|·| fails although the largest weight is 1000×
    bigger; momentum within its 1e-3 passes; the worst tensor is named first."""
    parity = _parity_module()
    rng = np.random.default_rng(0)
    want = {
        "weights": {
            "big": 1000 * rng.standard_normal(50),
            "small": rng.standard_normal(5),
            "worse": rng.standard_normal(5),
        },
        "momentum": {"big": rng.standard_normal(50), "small": rng.standard_normal(5), "worse": rng.standard_normal(5)},
    }
    got = {part: {name: value.copy() for name, value in tensors.items()} for part, tensors in want.items()}
    got["weights"]["small"][0] += 2e-4 * np.abs(want["weights"]["small"]).max()
    got["weights"]["worse"][1] += 5e-4 * np.abs(want["weights"]["worse"]).max()
    got["momentum"]["small"][0] += 5e-4 * np.abs(want["momentum"]["small"]).max()
    problems, worst = parity.compare(got, want, "the oracle")
    assert [p.split(":")[0] for p in problems] == ["weights worse", "weights small"], problems
    assert worst["weights"]["tensor"] == "worse" and worst["weights"]["error"] == pytest.approx(5e-4)
    assert worst["momentum"]["tensor"] == "small" and worst["momentum"]["error"] == pytest.approx(5e-4)
