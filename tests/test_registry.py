"""The registry (``nin.frameworks``): backends found by package discovery and through the
``nin.backends`` entry-point group, read from their records without importing a framework, and
one error for every unknown name.

The outside backend is tests/outside_backend/: a package (``nin_outside``, the NumPy oracle as
its engine) beside the ``.dist-info`` that ``pip install`` of its distribution would write, made
visible to a subprocess by ``PYTHONPATH``, so that it is found the way any installed backend is.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import nin
from nin import frameworks
from nin.errors import BackendUnavailable, NinError, UnknownNameError
from nin.frameworks import OPTIONAL_PARTS, BackendRecord, Needs, backend_record, list_backends, list_runtimes

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = Path(__file__).parent / "outside_backend"


def _env(*paths: Path) -> dict[str, str]:
    """This environment with ``paths`` first on ``PYTHONPATH`` and no backend selection."""
    env = {k: v for k, v in os.environ.items() if k != "NIN_BACKENDS"}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), *filter(None, [env.get("PYTHONPATH")])])
    return dict(env, TF_CPP_MIN_LOG_LEVEL="3")


def _run(argv: list[str], env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)


def _nin(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "nin.cli", *args], env)


# -- this repository's backends ------------------------------------------------------------------


def test_every_backend_folder_is_found():
    """Package discovery: every folder of frameworks/ with an ``__init__.py`` is a backend, framework
    backends first, each group in the records' order."""
    folders = {p.parent.name for p in (ROOT / "frameworks").glob("*/__init__.py")}
    assert set(list_runtimes()) == folders
    trains = [name for name in list_runtimes() if backend_record(name).trains]
    assert list_backends() == trains == list_runtimes()[: len(trains)]
    for group in (trains, list_runtimes()[len(trains) :]):
        assert [backend_record(n).order for n in group] == sorted(backend_record(n).order for n in group)


NAMED = {
    "backend_record": frameworks.backend_record,
    "backend_trains": frameworks.backend_trains,
    "backend_precisions": frameworks.backend_precisions,
    "export_formats": frameworks.export_formats,
    "missing_modules": frameworks.missing_modules,
    "unavailable_reason": frameworks.unavailable_reason,
    "get_backend": frameworks.get_backend,
    "thread_env": lambda name: frameworks.thread_env(name, 2),
    "check_precision": lambda name: frameworks.check_precision(name, "float32"),
    "get_part": lambda name: frameworks.get_part(name, "distributed"),
    "part_unavailable_reason": lambda name: frameworks.part_unavailable_reason(name, "distributed"),
}


@pytest.mark.parametrize("function", list(NAMED))
def test_an_unknown_backend_is_the_same_error_everywhere(function):
    known = ", ".join(list_runtimes())
    with pytest.raises(UnknownNameError, match=f"^unknown backend 'caffe'; known backends: {known}$"):
        NAMED[function]("caffe")


def test_an_unknown_part_is_an_unknown_name():
    with pytest.raises(
        UnknownNameError, match=f"unknown optional part 'book'; known parts: {', '.join(OPTIONAL_PARTS)}"
    ):
        frameworks.get_part(list_backends()[0], "book")


def test_reading_the_records_imports_no_framework_and_changes_nothing():
    """Listing and reading every record imports no module a record names and makes no host
    setting (XLA_FLAGS, NumPy's ``bool`` alias): those wait for the backend's first use."""
    code = (
        "import json, os, sys, numpy\n"
        "had = hasattr(numpy, 'bool')\n"
        "import nin.frameworks as f\n"
        "records = [f.backend_record(n) for n in f.list_runtimes()]\n"
        "f.available_runtimes(); [f.thread_env(n, 1) for n in f.list_runtimes()]\n"
        "imported = [m for m in f.framework_modules() if m in sys.modules]\n"
        "print(json.dumps([imported, os.environ.get('XLA_FLAGS'), had == hasattr(numpy, 'bool')]))\n"
    )
    env = {k: v for k, v in _env().items() if k != "XLA_FLAGS"}
    done = _run([sys.executable, "-W", "ignore", "-c", code], env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == [[], None, True]


@pytest.mark.parametrize("name, part", [(n, p) for n in list_runtimes() for p in backend_record(n).lacks])
def test_a_part_the_record_lacks_is_refused_with_its_reason(name, part):
    reason = frameworks.part_unavailable_reason(name, part)
    assert backend_record(name).lacks[part] in reason and "\n" not in reason
    assert f"the {name} backend has no {OPTIONAL_PARTS[part].title}" in reason
    with pytest.raises(BackendUnavailable) as refused:
        frameworks.get_part(name, part)
    assert str(refused.value) == reason


def test_a_part_whose_module_is_missing_says_what_to_install(monkeypatch):
    name, part = next((n, p) for n in list_backends() for p, needs in backend_record(n).parts.items() if needs.modules)
    monkeypatch.setattr(frameworks, "_missing", lambda modules: list(modules))
    monkeypatch.setattr(frameworks, "missing_modules", lambda name: [])
    reason = frameworks.part_unavailable_reason(name, part)
    needs = backend_record(name).parts[part]
    assert reason.endswith(f"needs {', '.join(needs.modules)}, which is not installed; {needs.install}"), reason


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"name": "not-a-name"}, "must be a Python identifier"),
        ({"parts": {"book": Needs()}}, "names part 'book'; known optional parts"),
        ({"lacks": {"d2l_book": "why"}}, "both has and lacks d2l_book"),
        ({"parts": {}}, "neither has nor lacks d2l_book, distributed, onnx_export"),
        ({"precisions": ("bf16", "float32")}, "expected 'float32' first"),
        ({"precisions": ("float32", "fp8")}, "expected 'float32' first"),
        ({"trains": False}, "an inference-only backend"),
    ],
)
def test_a_malformed_record_says_what_is_wrong(changes, message):
    fields = {
        "name": "ok",
        "requires": (),
        "extra": "",
        "parts": dict.fromkeys(OPTIONAL_PARTS, Needs()),
        **changes,
    }
    with pytest.raises(NinError, match=message):
        BackendRecord(**fields)


def test_records_are_frozen():
    record = backend_record(list_runtimes()[0])
    with pytest.raises(AttributeError):
        record.trains = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        record.parts["x"] = Needs()  # type: ignore[index]
    assert hash(record) == hash(backend_record(list_runtimes()[0]))


def _extras_from_pyproject(extras: list[str]) -> set[str]:
    """``extras`` of pyproject.toml and every extra they include, read from the file itself."""
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    found, todo = set(), list(extras)
    while todo:
        extra = todo.pop()
        if extra not in found:
            found.add(extra)
            for requirement in optional[extra]:
                included = re.fullmatch(r"nin-suite\[(.*)\]", requirement)
                todo += included.group(1).split(",") if included else []
    return found


@pytest.mark.parametrize(
    "extras", [["all", "dev"], ["current", "dev"], *([backend_record(n).extra] for n in list_runtimes())]
)
def test_the_backends_of_extras_follow_pyproject(extras):
    """What ``nin backends --extra`` (the Makefile's NIN_REQUIRE_BACKENDS) says each set of extras
    installs, against pyproject.toml read here."""
    want = [name for name in list_runtimes() if backend_record(name).extra in _extras_from_pyproject(extras)]
    assert frameworks.backends_of_extras(extras) == want and want
    with pytest.raises(UnknownNameError, match="unknown extra bogus of nin-suite"):
        frameworks.backends_of_extras(["bogus"])


def test_the_makefile_and_pyproject_keep_no_backend_list():
    """The Makefile asks the registry which backends an environment must provide, and setup.py
    finds the backend packages: neither names a backend."""
    makefile = (ROOT / "Makefile").read_text()
    assert "nin backends --extra" in makefile
    lists = [
        f"Makefile:{i}: {line}"
        for i, line in enumerate(makefile.splitlines(), 1)
        if not line.lstrip().startswith("#") and sum(bool(re.search(rf"\b{n}\b", line)) for n in list_runtimes()) > 1
    ]
    assert not lists, f"hand-kept backend lists: {lists}"
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "packages" not in setuptools, "pyproject.toml lists packages by hand; setup.py finds them"
    packages = runpy.run_path(str(ROOT / "setup.py"), run_name="setup_packages")["packages"]()
    assert packages == ["nin", "nin.frameworks", *(frameworks.backend_package(n) for n in sorted(list_runtimes()))]


# -- backends from outside -------------------------------------------------------------------------


def test_an_outside_backend_joins_nin_backends_compare_conformance_and_train():
    env = _env(OUTSIDE)
    listed = _nin("backends", env=env)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("outside "))
    assert "nin-outside" in row and row.rstrip().endswith("available"), listed.stdout
    compared = _nin("compare", "nin_tiny", "--backends", "outside", env=env)
    assert compared.returncode == 0, compared.stderr
    assert re.search(r"^outside\s+numpy .*\bok$", compared.stdout, re.M), compared.stdout
    checked = _nin("conformance", "--backends", "outside", "--models", "nin_tiny", "nin3d", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert re.search(r"\b(\d+)/\1 cells hold every property", checked.stdout), checked.stdout
    refused = _nin("train", "--backend", "outside", "--workers", "2", "--out", "/nonexistent/run", env=env)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert (
        "the outside backend has no data-parallel training (distributed.py): the NumPy oracle trains" in refused.stderr
    )


def test_an_outside_backend_runs_in_the_parametrized_suite():
    """tests/test_conformance.py with the outside backend installed: its cases are collected for
    every zoo model (the default selection, no NIN_BACKENDS), and those on the small models pass."""
    env = _env(OUTSIDE)
    pytest_ = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_conformance.py"]
    collected = _run([*pytest_, "--collect-only", "-k", "outside"], env)
    ids = set(re.findall(r"test_forward_matches_reference\[outside-(\w+)\]", collected.stdout))
    assert ids == set(nin.list_models()), collected.stdout[-2000:]
    done = _run([*pytest_, "-k", "outside and (nin_tiny or not nin_)", "-rs"], env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", done.stdout).group(1))
    assert passed >= 25 and " failed" not in done.stdout, done.stdout[-2000:]


def _dist_info(folder: Path, name: str, entry_points: str) -> Path:
    info = folder / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[nin.backends]\n{entry_points}\n")
    return folder


def test_a_broken_outside_backend_is_left_out_with_its_reason(tmp_path):
    """An entry point naming a missing package, one clashing with this repository's name, and
    one naming an object: each is left out with a one-line reason; everything else works."""
    clash = list_runtimes()[0]
    _dist_info(
        tmp_path, "nin_broken", f"gone = no_such_package_here\n{clash} = nin_outside\nobject = nin_outside:RECORD"
    )
    env = _env(tmp_path, OUTSIDE)
    listed = _nin("backends", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[2:]}
    assert (
        "broken: entry point gone = 'no_such_package_here' of nin_broken cannot be read: ModuleNotFoundError"
        in rows["gone"]
    )
    assert f"registers a backend named {clash!r}, which nin-suite has" in rows[clash]  # its second row
    assert "names an object; it must name the backend's package" in rows["object"]
    assert "available" in rows["outside"]
    refused = _nin("compare", "nin_tiny", "--backends", "gone", env=env)
    assert refused.returncode == 2, refused.stderr
    assert (
        refused.stderr.strip().splitlines()[-1].startswith("nin compare: error: backend 'gone' cannot be used: entry")
    )


# -- frameworks/README.md against the registry --------------------------------------------------

README = ROOT / "frameworks" / "README.md"


def _tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table of ``text``: its rows (header first, the separator left out), cells stripped."""
    tables, rows = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                rows.append(cells)
        elif rows:
            tables.append(rows)
            rows = []
    return tables


def _table(header: list[str]) -> list[list[str]]:
    """The rows of README's one table whose header starts with ``header``."""
    found = [t[1:] for t in _tables(README.read_text(encoding="utf-8")) if t[0][: len(header)] == header]
    assert len(found) == 1, f"frameworks/README.md has {len(found)} tables headed {header}"
    return found[0]


def _ours(names: list[str]) -> list[str]:
    return [n for n in names if frameworks.backend_distribution(n) == frameworks.DISTRIBUTION]


def test_readme_records_table_is_the_records():
    from nin.backends import records_markdown

    assert records_markdown() in README.read_text(encoding="utf-8"), (
        "frameworks/README.md's table of the records differs from them: paste `nin backends --markdown` there"
    )


def test_readme_lists_every_record_field_and_file():
    import dataclasses

    fields = [row[0].strip("`") for row in _table(["field", "type", "says"])]
    assert fields == [f.name for f in dataclasses.fields(BackendRecord)]
    files = {row[0] for row in _table(["file", "holds"])}
    want = {"__init__.py"} | {f"{f}.py" for n in list_backends() for f in backend_record(n).files()}
    want |= {f"{part.file}.py" for part in OPTIONAL_PARTS.values()}
    assert files == {f"`{f}`" for f in want}


def test_readme_documents_exactly_the_contract():
    """Every name of the contract and of each optional part leads a row of a table of names (the
    model's two are in the file table), and every name such a row leads is one of them."""
    known = set(frameworks.CONTRACT) | {n for part in OPTIONAL_PARTS.values() for n in part.names}
    tables = _tables(README.read_text(encoding="utf-8"))
    leading = {
        m.group(1)
        for t in tables
        if t[0][0] in ("function", "name")
        for row in t[1:]
        if (m := re.match(r"`(\w+)", row[0]))
    }
    model_row = next(row[1] for row in _table(["file", "holds"]) if row[0] == "`model.py`")
    in_model_row = {n for n in frameworks.CONTRACT if f"`{n}(" in model_row}
    assert leading - known == set(), f"documented but not in the contract: {sorted(leading - known)}"
    assert known - leading - in_model_row == set(), f"in the contract, not documented: {sorted(known - leading)}"


def test_readme_native_half_has_a_column_per_framework_backend():
    header = next(t[0] for t in _tables(README.read_text(encoding="utf-8")) if t[0][0] == "function" and len(t[0]) > 2)
    assert header[1:] == _ours(list_backends())


def test_readme_host_settings_name_each_backends_thread_variables():
    rows = _table(["setting", "applied by", "when", "measured effect", "opt-out"])
    assert {row[1] for row in rows} <= set(_ours(list_runtimes())), "a row applied by no backend"
    threads = {row[1]: row[0] for row in rows if row[0].startswith("threads:")}
    assert sorted(threads) == sorted(_ours(list_runtimes())), "one threads row per backend"
    for name, setting in threads.items():
        named = re.findall(r"`([A-Z][A-Z0-9_]+)`", setting.split(";")[0])
        assert named == list(backend_record(name).thread_env), f"{name}: the README names {named}"
