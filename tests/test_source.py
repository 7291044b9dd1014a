"""nin.frameworks.source cuts a backend's code out of its files without importing its framework,
for the tutorials and the website's framework tabs; the website shows, for every framework
backend of the registry, each unit of docs/website/pages.py (framework-free: both environments)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

import nin
from nin.errors import NinError
from nin.frameworks import backend_record, source

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # for its dataclasses
    spec.loader.exec_module(module)
    return module


pages = _load(ROOT / "docs" / "website" / "pages.py", "nin_website_pages")  # imports nin only

SAMPLE = '''"""A backend file.

    engine = Engine()          # the engine's lines
    engine.run(model)

Prose between.

    engine.stop()
"""

import framework as fw


class Block(fw.Module):
    pass


class Unused(fw.Module):
    pass


@fw.compile
@fw.trace(static=("x",))
def make_block(spec):
    """Named Block and a helper."""
    return Block(spec) if helper(spec) else None


def helper(spec):
    return True


class Trainer:
    def step(self, x):
        return fw.step(x)
'''


@pytest.fixture
def sample(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "model.py"
    path.write_text(SAMPLE, encoding="utf-8")
    monkeypatch.setattr(source, "source_path", lambda backend, file: path)
    return path


def test_definition_cuts_a_function_with_its_decorators(sample):
    (snippet,) = source.definition("any", "model", "make_block")
    lines = SAMPLE.splitlines()
    assert snippet.first_line == lines.index("@fw.compile") + 1
    assert snippet.code.splitlines()[0] == "@fw.compile"
    assert snippet.code.splitlines()[-1] == "    return Block(spec) if helper(spec) else None"
    assert snippet.path == sample


def test_definition_adds_the_classes_it_names_only_when_asked(sample):
    shown = source.definition("any", "model", "make_block", with_classes=True)
    assert [s.code.splitlines()[0] for s in shown] == ["class Block(fw.Module):", "@fw.compile"]  # file order
    assert len(source.definition("any", "model", "make_block")) == 1


def test_definition_of_a_method_is_dedented(sample):
    (snippet,) = source.definition("any", "model", "Trainer.step")
    assert snippet.code == "def step(self, x):\n    return fw.step(x)"
    assert SAMPLE.splitlines()[snippet.first_line - 1] == "    def step(self, x):"


@pytest.mark.parametrize("name", ["nothing", "Trainer.nothing", "helper.step", "fw"])
def test_definition_of_a_missing_name_is_none(sample, name):
    assert source.definition("any", "model", name) is None


def test_docstring_code_gives_each_run_of_code_lines(sample):
    runs = source.docstring_code("any", "model")
    lines = SAMPLE.splitlines()
    assert [r.code for r in runs] == [
        "engine = Engine()          # the engine's lines\nengine.run(model)",
        "engine.stop()",
    ]
    assert [lines[r.first_line - 1].strip() for r in runs] == [r.code.splitlines()[0] for r in runs]


def test_docstring_without_code_is_an_error(tmp_path, monkeypatch):
    path = tmp_path / "plain.py"
    path.write_text('"""Only prose."""\n', encoding="utf-8")
    monkeypatch.setattr(source, "source_path", lambda backend, file: path)
    with pytest.raises(NinError, match="no indented code lines"):
        source.docstring_code("any", "plain")


def test_a_backend_file_that_does_not_exist_is_an_error():
    with pytest.raises(NinError, match="has no file nothing.py"):
        source.source_path(nin.list_backends()[0], "nothing")


@pytest.mark.parametrize("backend", nin.list_backends())
def test_the_real_files_give_what_the_file_holds(backend):
    """Every backend's nin_block: the lines of its own model.py, from the line given on."""
    shown = source.definition(backend, "model", "nin_block", with_classes=True)
    lines = source.source_path(backend, "model").read_text(encoding="utf-8").splitlines()
    for snippet in shown:
        code = snippet.code.splitlines()
        assert lines[snippet.first_line - 1].strip() == code[0].strip()
        assert {line.strip() for line in code} <= {line.strip() for line in lines}
    assert sum(s.code.startswith("def nin_block(") for s in shown) == 1


@pytest.mark.parametrize("unit", list(pages.UNITS))
@pytest.mark.parametrize("backend", nin.list_backends())
def test_the_website_has_every_unit_of_every_backend(backend, unit):
    """What the website's tabs show for each backend (so `make docs` does not fail on a new
    backend): code from the unit's file, or, for an optional part the backend lacks, its
    record's reason."""
    shown = pages.snippets(backend, pages.UNITS[unit])
    part = pages.UNITS[unit].part
    if part is not None and part not in backend_record(backend).parts:
        assert isinstance(shown, str) and backend_record(backend).lacks[part] in shown
    else:
        assert shown and all(s.path == source.source_path(backend, pages.UNITS[unit].file) for s in shown)


def test_reading_the_source_imports_no_framework():
    code = (
        "import sys\nfrom nin.frameworks import list_backends, source\n"
        "for b in list_backends():\n"
        "    source.definition(b, 'model', 'NiN'); source.definition(b, 'train', 'Trainer.step')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in set(sys.argv[1:])))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *nin.frameworks.framework_modules()], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", f"reading the source imported: {done.stdout}"


def test_a_marker_becomes_tabs_in_place_of_the_code_under_it():
    readme = "Abridged:\n\n<!-- framework-tabs: nin_block -->\n```python\n# abridged code\n```\n\nAfter.\n"
    page = pages.expand_markers(readme)
    assert "# abridged code" not in page and "<!-- framework-tabs" not in page
    assert page.startswith("Abridged:\n\n") and page.rstrip().endswith("After.")
    labels = [line.removeprefix('=== "').removesuffix('"') for line in page.splitlines() if line.startswith("=== ")]
    assert labels == nin.list_backends()
    alone = pages.expand_markers("Text.\n\n<!-- framework-tabs: distributed -->\n\n```python\nkept()\n```\n")
    assert "kept()" in alone and alone.count("=== ") == len(nin.list_backends())


def test_an_unknown_marker_is_an_error():
    with pytest.raises(NinError, match="unknown framework-tabs unit 'nothing'"):
        pages.expand_markers("<!-- framework-tabs: nothing -->\n")


def test_the_zoo_page_has_every_models_layer_table():
    page = pages.zoo()
    for name in nin.list_models():
        assert f"## {name}\n" in page
        total = f"{nin.param_count(nin.get_spec(name)):,} parameters"
        assert total in page.split(f"## {name}\n")[1].split("\n## ")[0], f"{name}: no layer table with its total"


def test_the_results_page_draws_every_latest_run():
    page, plots = pages.results()
    for path in [*pages.latest("conformance-*.json"), *pages.latest("bench-*.json")]:
        assert path.name in page and f"{pages.RESULTS}/{path.stem}.png" in plots
        assert plots[f"{pages.RESULTS}/{path.stem}.png"].startswith(b"\x89PNG")
    for matrix in pages.latest("conformance-*.json"):
        models = {c["model"] for c in json.loads(matrix.read_text(encoding="utf-8"))["cells"]}
        assert all(f"| {model} |" in page for model in models)
