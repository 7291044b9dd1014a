"""``nin.heap``: the glibc setting the PyTorch backend makes at import, checked in fresh
processes (it is once per process)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
from conftest import available_or_skip

from nin.frameworks import list_runtimes

CODE = "import nin.heap as h; print(h.retain_freed_memory(), h.retain_freed_memory())"


def _run(**env) -> str:
    out = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=True, env={**os.environ, **env}
    )
    return out.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_in_force_on_glibc_and_idempotent():
    assert _run(NIN_RETAIN_FREED_MEMORY="1") == "True True"


def test_switched_off_by_the_environment():
    assert _run(NIN_RETAIN_FREED_MEMORY="0") == "False False"


def test_the_torch_backend_sets_it():
    available_or_skip("torch")
    code = "import nin; nin.get_backend('torch'); import nin.heap as h; print(h._done)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=dict(os.environ))
    assert out.stdout.strip().splitlines()[-1] == str(sys.platform == "linux")


@pytest.mark.parametrize("name", [name for name in list_runtimes() if name != "torch"])
def test_other_backends_leave_it_alone(name):
    """Only the backend that needs the setting applies it."""
    available_or_skip(name)
    code = f"import nin; nin.get_backend({name!r}); import nin.heap as h; print(h._done)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=dict(os.environ))
    assert out.stdout.strip().splitlines()[-1] == "None"
