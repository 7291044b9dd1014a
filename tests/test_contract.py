"""The backend contract (``nin.frameworks.record``, frameworks/README.md): every backend holds
the files its record implies and exports exactly the contract's names, each defined in the file
the contract names; each optional part it declares defines that part's names."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from conftest import backend_or_skip, part_or_skip, selected_backends, selected_runtimes

import nin
from nin.frameworks import OPTIONAL_PARTS, backend_package, backend_record, list_runtimes

FRAMEWORKS = Path(nin.frameworks.__file__).parent


def _files(package: str) -> list[str]:
    """The modules of ``package`` besides ``__init__``, read off its folder."""
    folder = Path(importlib.import_module(package).__file__).parent
    return sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("name", list_runtimes())
def test_files_are_those_the_record_implies(name):
    """The contract's files, and a file for each optional part the record has (none for a part it lacks)."""
    want = backend_record(name).files()
    got = _files(backend_package(name))
    assert got == want, f"{backend_package(name)} holds {got}, but its record implies {want}"


@pytest.mark.parametrize("name", selected_runtimes())
def test_exports_exactly_the_contract(name):
    backend = backend_or_skip(name)
    contract = backend_record(name).contract()
    assert set(contract) <= set(backend.__all__), (
        f"{backend.__name__}.__all__ lacks {sorted(set(contract) - set(backend.__all__))} of the contract"
    )
    if backend_record(name).trains:  # a framework backend exports the contract and nothing else
        assert backend.__all__ == list(contract), (
            f"{backend.__name__}.__all__ is {backend.__all__}, not {list(contract)}"
        )
    for public, file in contract.items():
        value = getattr(backend, public)
        home = importlib.import_module(f"{backend.__name__}.{file}")
        # the file's own object, and (a function or class) defined there, not imported into it
        origin = getattr(value, "__module__", home.__name__)
        assert getattr(home, public, None) is value and origin == home.__name__, (
            f"{backend.__name__}.{public} comes from {origin}, but should come from {file}.py"
        )


@pytest.mark.parametrize(
    "name, part", [(name, part) for name in selected_backends() for part in backend_record(name).parts]
)
def test_each_optional_part_defines_its_names(name, part):
    module = part_or_skip(name, part)
    missing = [n for n in OPTIONAL_PARTS[part].names if not callable(getattr(module, n, None))]
    assert not missing, f"{module.__name__} lacks {', '.join(missing)}, which part {part!r} defines"


def test_unknown_name_is_an_attribute_error():
    backend = backend_or_skip(selected_backends()[0])
    with pytest.raises(AttributeError, match="no_such_name"):
        backend.no_such_name  # noqa: B018
