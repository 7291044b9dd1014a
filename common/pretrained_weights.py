"""Trained weights that ship with nin-suite, and the one rule for where a command's weights
come from.

The files live in ``nin/pretrained/`` (package data): one ``.safetensors`` of canonical
weights per model and ``manifest.json`` with, for each, its sha256, the exact ``nin train``
command that produced it and the test accuracy measured on the data set it was trained on.
``pretrained(name)`` checks the sha256 before it returns the weights.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from typing import Any

from .errors import UnknownNameError, WeightsError
from .spec import NiNSpec
from .weights import Weights, load_weights

PRETRAINED = "pretrained"  # the --weights value that asks for the shipped weights


def _folder():
    return resources.files("nin") / "pretrained"


def _manifest() -> dict[str, dict[str, Any]]:
    return json.loads((_folder() / "manifest.json").read_text())


def pretrained_models() -> list[str]:
    """The zoo models that ship with trained weights."""
    return list(_manifest())


def pretrained_info(name: str) -> dict[str, Any]:
    """The manifest entry of ``name``: file, sha256, command, data, test accuracy, date."""
    manifest = _manifest()
    if name not in manifest:
        raise UnknownNameError(
            f"no trained weights ship for {name!r}; models with trained weights: {', '.join(manifest)}. "
            f"Train one with: nin train --backend torch --model {name} --data DATA --out DIR"
        )
    return manifest[name]


def pretrained(name: str) -> Weights:
    """The shipped canonical weights of zoo model ``name`` (e.g. "nin_mnist"), validated
    against ``nin.get_spec(name)`` after their sha256 is checked against the manifest."""
    from .zoo import get_spec

    info = pretrained_info(name)
    with resources.as_file(_folder() / info["file"]) as path:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != info["sha256"]:
            raise WeightsError(
                f"{path} has sha256 {digest}, but the manifest says {info['sha256']}: the file is damaged or "
                f"was replaced; reinstall nin-suite, or rebuild it with: {info['command']}"
            )
        return load_weights(path, get_spec(name))


def resolve_weights(spec: NiNSpec, source: str | None) -> tuple[Weights | None, str]:
    """Where a command's weights come from, and a line saying so: ``source`` a weights file
    (``.npz``, ``.safetensors``, a ``nin train`` checkpoint), ``"pretrained"``, or None — the
    shipped weights where ``spec`` is a zoo model that has them, else ``(None, ...)`` and the
    caller decides (seeded initial weights, or an error)."""
    if source is not None and source != PRETRAINED:
        return load_weights(source, spec), f"weights: {source}"
    if source is None and spec.name not in pretrained_models():
        return None, f"no trained weights ship for {spec.name}"
    from .zoo import get_spec

    info = pretrained_info(spec.name)
    if spec != get_spec(spec.name):
        raise WeightsError(
            f"the pretrained weights of {spec.name} fit its zoo configuration only; this {spec.name} has "
            f"another input size, channel count or class count: pass --weights FILE instead"
        )
    return pretrained(spec.name), (
        f"pretrained weights: {info['file']} (test accuracy {info['test_accuracy']:.2%} on {info['data']}; "
        f"made by: {info['command']})"
    )
