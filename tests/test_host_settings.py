"""Process-wide settings a backend makes on its own (frameworks/README.md, "Host settings"):
each only where it was measured to help, never over the user's own, and with its opt-out."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import backend_or_skip

import nin.frameworks.jax as jax_backend  # the package only: it imports no framework

YNN_OFF = "--xla_cpu_experimental_ynn_fusion_type="


@pytest.mark.parametrize(
    ("release", "before", "env", "after"),
    [
        ((0, 10), "", {}, YNN_OFF),
        ((0, 10), "--xla_dump_to=/tmp/x", {}, f"--xla_dump_to=/tmp/x {YNN_OFF}"),
        ((0, 10), "--xla_cpu_experimental_ynn_fusion_type=all", {}, "--xla_cpu_experimental_ynn_fusion_type=all"),
        ((0, 10), "", {"NIN_XLA_DEFAULTS": "1"}, ""),
        ((0, 7), "", {}, ""),  # a jaxlib that does not know the flag would abort the process
        ((0, 11), "", {}, ""),  # not measured there
        (None, "", {}, ""),  # no jaxlib installed
    ],
    ids=["jaxlib-0.10", "kept-flags", "users-own", "opt-out", "jaxlib-0.7", "jaxlib-0.11", "no-jaxlib"],
)
def test_xla_cpu_flags(release, before, env, after, monkeypatch):
    monkeypatch.setattr(jax_backend, "_jaxlib_release", lambda: release)
    monkeypatch.setenv("XLA_FLAGS", before)
    monkeypatch.delenv("NIN_XLA_DEFAULTS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    jax_backend._set_xla_cpu_flags()
    assert os.environ["XLA_FLAGS"] == after


def test_the_installed_jaxlib_accepts_what_the_backend_sets():
    """In a fresh process: the backend's flags reach XLA_FLAGS before JAX computes, and this
    jaxlib runs with them (XLA aborts on a flag it does not know)."""
    backend_or_skip("jax")
    code = (
        "import json, os, numpy as np, nin\n"
        "backend = nin.get_backend('jax')\n"
        "net = backend.build(nin.get_spec('nin_tiny'))\n"
        "logits = backend.forward(net, np.zeros((1, 3, 16, 16), np.float32))\n"
        "print(json.dumps({'flags': os.environ.get('XLA_FLAGS', ''), 'shape': list(logits.shape)}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "NIN_XLA_DEFAULTS")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    expected = jax_backend._XLA_CPU_FLAGS.get(jax_backend._jaxlib_release(), "")
    assert out["flags"] == expected and out["shape"] == [1, 10]


@pytest.mark.parametrize(("before", "after"), [(None, "3"), ("0", "0")], ids=["unset", "users-own"])
def test_tensorflow_log_level_set_before_tensorflow_is_imported(before, after):
    """Reading the TensorFlow backend's record sets nothing; its ``prepare`` hook, which runs
    before the backend first imports TensorFlow, sets ``TF_CPP_MIN_LOG_LEVEL`` (TensorFlow
    reads it once, when its C++ runtime loads) and keeps a value already set."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    if before is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = before
    code = (
        "import os, sys\n"
        "import nin.frameworks.tensorflow\n"
        "from nin.frameworks.record import prepare\n"
        "read = os.environ.get('TF_CPP_MIN_LOG_LEVEL')\n"
        "prepare('nin.frameworks.tensorflow')\n"
        "print(read, os.environ.get('TF_CPP_MIN_LOG_LEVEL'), 'tensorflow' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [str(before), after, "False"]
