"""Shared fixtures: backends by name (``NIN_BACKENDS=torch,jax`` selects some) and batches;
the oracle's cases are ``nin.checks``' (cached there).

``NIN_REQUIRE_BACKENDS=torch,tensorflow,jax,mxnet`` (CI sets it per environment) turns the
skip of a listed backend that is not installed into a failure naming what is missing, so a
CI run cannot pass with a backend silently absent.

``NIN_STRICT_SKIPS=1`` (the Makefile's test targets, so CI, set it) turns every skip whose
reason is not on ``ALLOWED_SKIPS`` into a failure naming the test and its reason; every run
ends with the skips counted by reason."""

from __future__ import annotations

import os
import re
from collections import Counter
from typing import NoReturn

import pytest

import nin
from nin.checks import sample_batch


def selected_runtimes() -> list[str]:
    """Backends and inference-only runtimes (onnxruntime); ``NIN_BACKENDS`` selects some."""
    from nin.frameworks import list_runtimes

    wanted = os.environ.get("NIN_BACKENDS")
    return [b for b in wanted.split(",") if b] if wanted else list_runtimes()


def selected_backends() -> list[str]:
    """The selected backends that train (the whole contract); an unknown name stays in, to fail."""
    from nin.frameworks import backend_trains, list_runtimes

    return [b for b in selected_runtimes() if b not in list_runtimes() or backend_trains(b)]


def selected_with_part(part: str) -> list[str]:
    """The selected backends whose record says they have optional ``part`` (``nin.frameworks.record.OPTIONAL_PARTS``)."""
    from nin.frameworks import backend_record, list_runtimes

    return [b for b in selected_backends() if b not in list_runtimes() or part in backend_record(b).parts]


def required_backends() -> list[str]:
    """The backends ``NIN_REQUIRE_BACKENDS`` (comma list) says must be available."""
    return [b for b in os.environ.get("NIN_REQUIRE_BACKENDS", "").split(",") if b]


# the d2l book's package (tests/test_d2l_*.py): `make setup` installs it with --no-deps
D2L_MISSING = "the d2l package is not installed (make setup installs it: pip install --no-deps d2l)"


def skip_or_fail(reason: str, backend: str) -> NoReturn:
    """Skip with ``reason`` — or fail with it where ``NIN_REQUIRE_BACKENDS`` lists ``backend``,
    the backend that needs what is missing."""
    if backend in required_backends():
        pytest.fail(f"{reason}; NIN_REQUIRE_BACKENDS={os.environ['NIN_REQUIRE_BACKENDS']} requires it")
    pytest.skip(reason)


def available_or_skip(name: str) -> None:
    """Nothing where backend ``name`` can run here; else a skip naming why (the registry's
    reason), a failure where it is listed in ``NIN_REQUIRE_BACKENDS``.  Imports no framework."""
    from nin.frameworks import unavailable_reason

    reason = unavailable_reason(name)
    if reason:
        skip_or_fail(reason, name)


def backend_or_skip(name: str):
    """The adapter, or ``available_or_skip``'s skip or failure.  An installed backend that fails
    to import is a failure, not a skip."""
    available_or_skip(name)
    return nin.get_backend(name)


def part_or_skip(name: str, part: str):
    """The module of optional ``part`` of backend ``name`` (``nin.frameworks.get_part``), or a
    skip naming why it cannot be used here — a failure where the backend is in
    ``NIN_REQUIRE_BACKENDS``, as for the backend itself."""
    from nin.frameworks import get_part, part_unavailable_reason

    backend_or_skip(name)
    reason = part_unavailable_reason(name, part)
    if reason:
        if name in required_backends():
            pytest.fail(f"{reason}; NIN_REQUIRE_BACKENDS={os.environ['NIN_REQUIRE_BACKENDS']} requires it")
        pytest.skip(reason)
    return get_part(name, part)


def gpu_backend_or_skip(name: str):
    """The adapter where ``name`` sees a GPU; otherwise a skip "no GPU visible to NAME: why"
    (a CPU-only build, no driver, no CUDA plugin: ``nin.checks.gpu_missing_reason``) — a
    failure instead where ``NIN_REQUIRE_GPU`` (a comma list, e.g. ``torch,jax``) names it."""
    from nin.checks import gpu_missing_reason

    adapter = backend_or_skip(name)
    reason = gpu_missing_reason(name)
    if reason:
        required = os.environ.get("NIN_REQUIRE_GPU", "")
        if name in required.split(","):
            pytest.fail(f"no GPU visible to {name}: {reason}; NIN_REQUIRE_GPU={required} requires one")
        pytest.skip(f"no GPU visible to {name}: {reason}")
    return adapter


def require(adapter, capability: str) -> None:
    """Skip a test the backend cannot take part in: one without ``loss_and_grads`` (an
    inference-only runtime) skips the gradient tests."""
    if not hasattr(adapter, capability):
        pytest.skip(f"backend {adapter.__name__.rsplit('.', 1)[-1]} has no {capability}")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``fuzz`` (the long property-based profile) run only when ``-m`` names the
    marker (``pytest -m fuzz``); the default run deselects them."""
    if "fuzz" in (config.option.markexpr or ""):
        return
    fuzz = [item for item in items if item.get_closest_marker("fuzz")]
    if fuzz:
        config.hook.pytest_deselected(items=fuzz)
        items[:] = [item for item in items if not item.get_closest_marker("fuzz")]


# -- skips that are chosen -------------------------------------------------------------------

# The only reasons a test may skip under NIN_STRICT_SKIPS=1 (CI), each with the pattern its
# reason starts with: a GPU test on a machine without one; MXNet, whose last release needs
# NumPy < 2, in the current environment (the registry's reason, nin.frameworks.unavailable_reason);
# the website's tests in the legacy environment, which does not install the docs extra (the
# site is built and opened in the browser once, by the current environment: tests/test_site.py);
# and a backend whose framework the environment's extras do not install (PaddlePaddle and MLX
# in the legacy one; the registry's reason), only where NIN_REQUIRE_BACKENDS names what the
# environment provides: a backend it names fails instead of skipping (skip_or_fail).
NOT_PROVIDED = "a backend this environment does not provide"
ALLOWED_SKIPS = {
    "no GPU visible": re.compile(r"no GPU visible\b"),
    "MXNet under NumPy 2": re.compile(r"backend 'mxnet' needs NumPy < 2\b"),
    "the website in the current environment only": re.compile(r"website: this environment has no docs extra\b"),
    NOT_PROVIDED: re.compile(r"backend '\w+' needs [\w., ]+, which is not installed; install it with: "),
}


def allowed_skip(reason: str) -> str | None:
    """The name of the ``ALLOWED_SKIPS`` entry ``reason`` falls under, or None."""
    return next(
        (
            name
            for name, pattern in ALLOWED_SKIPS.items()
            if pattern.match(reason) and (name != NOT_PROVIDED or required_backends())
        ),
        None,
    )


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The reason of a skipped report, as ``pytest.skip`` was given it."""
    text = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return text.removeprefix("Skipped: ")


def _refuse_unchosen_skip(report, what: str) -> None:
    """Under ``NIN_STRICT_SKIPS=1``, turn a skip whose reason is not allowed into a failure."""
    if os.environ.get("NIN_STRICT_SKIPS") != "1" or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = skip_reason(report)
    if allowed_skip(reason) is None:
        report.outcome = "failed"
        report.longrepr = (
            f"{what} skipped with a reason that is not on the allow-list (tests/conftest.py ALLOWED_SKIPS: "
            f"{'; '.join(ALLOWED_SKIPS)}), and NIN_STRICT_SKIPS=1 makes that a failure: {reason}"
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    _refuse_unchosen_skip(report, item.nodeid)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    _refuse_unchosen_skip(report, f"{collector.nodeid} (all of it, at collection)")
    return report


def pytest_terminal_summary(terminalreporter):
    """The skips of the run counted by reason: by allow-list entry, or in full."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if not hasattr(r, "wasxfail")]
    if not skipped:
        return
    counts = Counter(allowed_skip(skip_reason(r)) or f"not on the allow-list: {skip_reason(r)}" for r in skipped)
    terminalreporter.write_sep("-", f"{len(skipped)} skipped, by reason")
    for reason, count in counts.most_common():
        terminalreporter.write_line(f"{count:5d}  {reason}")


@pytest.fixture(params=selected_backends())
def backend(request):
    return backend_or_skip(request.param)


@pytest.fixture(params=selected_runtimes())
def runtime(request):
    """Every selected runtime, the inference-only ones (onnxruntime) included."""
    return backend_or_skip(request.param)


batch = sample_batch
