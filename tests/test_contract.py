"""The backend contract (``nin.frameworks.CONTRACT``, frameworks/README.md): the four backends
hold the same files and export exactly the same public names, each defined in the file the
contract names."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from conftest import backend_or_skip, selected_backends

import nin
from nin.frameworks import CONTRACT

FRAMEWORKS = Path(nin.frameworks.__file__).parent


def _files(backend: str) -> list[str]:
    return sorted(p.name for p in (FRAMEWORKS / backend).glob("*.py"))


@pytest.mark.parametrize("name", nin.list_backends())
def test_same_files_as_torch(name):
    assert _files(name) == _files("torch"), f"frameworks/{name}/ holds {_files(name)}, but should be {_files('torch')}"


@pytest.mark.parametrize("name", nin.list_backends())
def test_every_contract_file_exists(name):
    missing = sorted({f"{file}.py" for file in CONTRACT.values()} - set(_files(name)))
    assert not missing, f"frameworks/{name}/ lacks {', '.join(missing)}, which nin.frameworks.CONTRACT names"


@pytest.mark.parametrize("name", selected_backends())
def test_exports_exactly_the_contract(name):
    backend = backend_or_skip(name)
    assert backend.__all__ == list(CONTRACT), (
        f"{backend.__name__}.__all__ is {backend.__all__}, but should be {list(CONTRACT)}"
    )
    for public, file in CONTRACT.items():
        value = getattr(backend, public)
        home = importlib.import_module(f"{backend.__name__}.{file}")
        # the file's own object, and (a function or class) defined there, not imported into it
        origin = getattr(value, "__module__", home.__name__)
        assert getattr(home, public, None) is value and origin == home.__name__, (
            f"{backend.__name__}.{public} comes from {origin}, but should come from {file}.py"
        )


def test_unknown_name_is_an_attribute_error():
    backend = backend_or_skip(selected_backends()[0])
    with pytest.raises(AttributeError, match="no_such_name"):
        backend.no_such_name  # noqa: B018
