"""Skips that are chosen (tests/conftest.py, ``ALLOWED_SKIPS``): under ``NIN_STRICT_SKIPS=1``,
which the Makefile's test targets set, a skip whose reason is not on the allow-list fails the
run, naming the test and its reason; every run counts its skips by reason.

Checked on a small suite of its own, run by pytest in a subprocess with this conftest.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ALLOWED_SKIPS, allowed_skip

TESTS = Path(__file__).resolve().parent

SUITE = """
import pytest

def test_gpu():
    pytest.skip("no GPU visible to torch")

def test_mxnet():
    pytest.skip("backend 'mxnet' needs NumPy < 2 (its framework's last release predates NumPy 2) and ...")

def test_unchosen():
    pytest.skip("the d2l package is not installed")

@pytest.mark.xfail(reason="an expected failure is not a skip", strict=True)
def test_expected_failure():
    assert False

def test_passes():
    pass
"""


def run_suite(tmp_path: Path, strict: bool, **files: str) -> subprocess.CompletedProcess:
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    for name, text in files.items():
        (tmp_path / f"{name}.py").write_text(text)
    env = {k: v for k, v in os.environ.items() if k not in ("NIN_STRICT_SKIPS", "PYTEST_ADDOPTS")}
    if strict:
        env["NIN_STRICT_SKIPS"] = "1"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", "--rootdir", str(tmp_path)]
    return subprocess.run([*command, str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True)


def test_the_allow_list(monkeypatch):
    assert set(ALLOWED_SKIPS) == {
        "no GPU visible",
        "MXNet under NumPy 2",
        "the website in the current environment only",
        "a backend this environment does not provide",
    }
    assert allowed_skip("no GPU visible to jax") == "no GPU visible"
    assert allowed_skip("backend 'mxnet' needs NumPy < 2 (its framework's …)") == "MXNet under NumPy 2"
    missing = "backend 'paddle' needs paddle, which is not installed; install it with: pip install 'nin-suite[paddle]'"
    monkeypatch.delenv("NIN_REQUIRE_BACKENDS", raising=False)
    for reason in ("backend 'jax' needs NumPy < 2", missing, "no GPU"):
        assert allowed_skip(reason) is None, reason
    # an environment that names the backends it provides: those fail instead of skipping
    monkeypatch.setenv("NIN_REQUIRE_BACKENDS", "torch,onnxruntime")
    assert allowed_skip(missing) == "a backend this environment does not provide"


def test_strict_skips_fail_an_unchosen_reason(tmp_path):
    done = run_suite(tmp_path, strict=True, test_suite=SUITE)
    out = done.stdout
    assert done.returncode == 1, out
    assert re.search(r"1 failed, 1 passed, 2 skipped, 1 xfailed", out), out
    assert (
        "test_suite.py::test_unchosen skipped with a reason that is not on the allow-list (tests/conftest.py "
        "ALLOWED_SKIPS: no GPU visible; MXNet under NumPy 2; the website in the current environment only; "
        "a backend this environment does not provide), and "
        "NIN_STRICT_SKIPS=1 makes that a failure: "
        "the d2l package is not installed"
    ) in out, out
    assert re.search(r"-+ 2 skipped, by reason -+\n\s+1  no GPU visible\n\s+1  MXNet under NumPy 2\n", out), out


def test_without_strict_skips_every_skip_is_counted(tmp_path):
    done = run_suite(tmp_path, strict=False, test_suite=SUITE)
    out = done.stdout
    assert done.returncode == 0, out
    assert re.search(r"1 passed, 3 skipped, 1 xfailed", out), out
    counted = re.search(r"-+ 3 skipped, by reason -+\n((?:\s+\d+  .*\n)+)", out)
    assert counted, out
    assert sorted(line.strip() for line in counted.group(1).splitlines()) == [
        "1  MXNet under NumPy 2",
        "1  no GPU visible",
        "1  not on the allow-list: the d2l package is not installed",
    ]


def test_a_module_skipped_at_collection_is_refused(tmp_path):
    """A module-level skip (``importorskip``) is refused too, as a collection error: no test runs."""
    module = "import pytest\npytest.importorskip('no_such_module_anywhere')\n\ndef test_never():\n    pass\n"
    done = run_suite(tmp_path, strict=True, test_module=module)
    assert done.returncode == 2 and "1 error" in done.stdout, done.stdout
    assert (
        "test_module.py (all of it, at collection) skipped with a reason that is not on the allow-list" in done.stdout
    ), done.stdout
    assert "could not import 'no_such_module_anywhere'" in done.stdout
