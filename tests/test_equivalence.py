"""benchmarks/equivalence.py: the two one-sided tests behind docs/training.md's table between
frameworks, checked against SciPy's one-sample and Welch t-tests (independent implementations),
and the reading of runs (an unfinished run does not count)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats  # both environments install it (the d2l extra)

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("equivalence", ROOT / "benchmarks" / "equivalence.py")
eq = importlib.util.module_from_spec(_spec)
sys.modules["equivalence"] = eq  # dataclasses look their module up there
_spec.loader.exec_module(eq)


def test_paired_tost_matches_scipy_one_sample_tests() -> None:
    rng = np.random.default_rng(0)
    a = 97.5 + rng.normal(0, 0.3, 10)
    b = a + rng.normal(0.1, 0.2, 10)
    got = eq.paired_tost(a, b, margin=0.5)
    d = a - b
    lower = stats.ttest_1samp(d, -0.5, alternative="greater").pvalue
    upper = stats.ttest_1samp(d, 0.5, alternative="less").pvalue
    assert got.p_lower == pytest.approx(lower, rel=1e-9)
    assert got.p_upper == pytest.approx(upper, rel=1e-9)
    assert got.p == pytest.approx(max(lower, upper), rel=1e-9)
    # the TOST verdict at alpha is the (1 - 2 alpha) interval lying inside the margin
    assert got.equivalent(0.05) == (-0.5 < got.ci_low and got.ci_high < 0.5)


def test_welch_tost_matches_scipy_welch_tests() -> None:
    rng = np.random.default_rng(1)
    a = 97.6 + rng.normal(0, 0.25, 10)
    b = 97.4 + rng.normal(0, 0.5, 10)
    got = eq.welch_tost(a, b, margin=0.5)
    lower = stats.ttest_ind(a + 0.5, b, equal_var=False, alternative="greater").pvalue
    upper = stats.ttest_ind(a - 0.5, b, equal_var=False, alternative="less").pvalue
    assert got.p_lower == pytest.approx(lower, rel=1e-9)
    assert got.p_upper == pytest.approx(upper, rel=1e-9)


def test_tost_refuses_equivalence_when_the_frameworks_differ() -> None:
    rng = np.random.default_rng(2)
    a = 97.5 + rng.normal(0, 0.2, 10)
    shifted = a - 1.0 + rng.normal(0, 0.1, 10)  # one point lower: outside a 0.5-point margin
    assert not eq.paired_tost(a, shifted).equivalent()
    assert not eq.welch_tost(a, shifted).equivalent()
    close = a + rng.normal(0, 0.05, 10)
    assert eq.paired_tost(a, close).equivalent()


def test_identical_differences_give_an_exact_verdict() -> None:
    a = np.array([97.0, 97.5, 98.0])
    assert eq.paired_tost(a, a).p == 0.0  # every seed equal: equivalent, exactly
    assert eq.paired_tost(a, a - 0.7).p == 1.0  # every seed 0.7 points apart: not within 0.5
    with pytest.raises(ValueError, match="equally long"):
        eq.paired_tost(a, a[:2])


def _write_run(folder: Path, accs: list[float]) -> None:
    folder.mkdir(parents=True)
    lines = [json.dumps({"epoch": i + 1, "test_acc": acc}) for i, acc in enumerate(accs)]
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_only_finished_runs_count(tmp_path: Path) -> None:
    _write_run(tmp_path / "torch" / "seed0", [0.5] * 9 + [0.975])
    _write_run(tmp_path / "torch" / "seed1", [0.5] * 4)  # interrupted after 4 epochs
    _write_run(tmp_path / "jax" / "seed0", [0.5] * 9 + [0.98])
    found = eq.collect([tmp_path], epochs=10)
    assert found == {"torch": {0: pytest.approx(97.5)}, "jax": {0: pytest.approx(98.0)}}


def test_a_run_is_claimed_once_and_a_dead_holder_is_taken_over(tmp_path: Path) -> None:
    folder = tmp_path / "torch" / "seed0"
    assert eq._claim(folder)  # this process holds it now
    assert not eq._claim(folder)  # a second run (this pid is alive) leaves it alone
    dead = __import__("subprocess").run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    (folder / ".running").write_text(dead.stdout.decode().strip())  # the pid of a process that has ended
    assert eq._claim(folder)


def test_holm_adjustment_by_hand() -> None:
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 = 0.03, 0.06, 0.04 → made non-decreasing: 0.03, 0.06, 0.06
    assert eq.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert eq.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
