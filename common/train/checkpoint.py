"""Checkpoints: a training state (canonical weights, PyTorch-convention momentum buffers,
completed epochs, metadata) in one ``.npz`` of format ``nin-checkpoint/2``, identified by the
spec's canonical JSON (``nin.spec.spec_json``), and the checks a resume makes against the run
that wants to continue it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NinError
from ..files import atomic_write
from ..spec import NiNSpec, spec_json
from ..weights import UNREADABLE, Weights
from .recipe import Recipe

CHECKPOINT = "checkpoint.npz"


class CheckpointError(NinError, ValueError):
    """A checkpoint that is missing, unreadable, or from a different model, recipe or dataset."""


# nin-checkpoint/2: the spec is its canonical JSON data (``nin.spec.spec_json``) in the metadata.
# nin-checkpoint/1 (earlier versions) held ``sha256(repr(spec))[:16]`` instead, which changed with
# any field added to a spec class; such a checkpoint resumes where that hash still matches.
_FORMAT = "nin-checkpoint/2"
_FORMAT_1 = "nin-checkpoint/1"
_MOMENTUM = "momentum."


def _format_1_hash(spec: NiNSpec) -> str:
    """A nin-checkpoint/1 checkpoint's spec field."""
    return hashlib.sha256(repr(spec).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Checkpoint:
    """A training state: canonical weights, momentum buffers, completed epochs and metadata
    (format, backend, model, the spec's canonical JSON, recipe, data set, metrics history,
    and whatever else the writer added: the metadata is an open dict)."""

    epoch: int
    state: dict[str, Weights]
    meta: dict[str, Any]


def save_checkpoint(path: str | Path, state: dict[str, Weights], meta: dict[str, Any]) -> Path:
    """One ``.npz``: the canonical weights under their own names, each momentum buffer as
    ``momentum.<name>`` (PyTorch's ``b``, whichever backend wrote it, so any backend resumes
    it), and ``meta`` as a JSON string under the format ``nin-checkpoint/2``; written
    atomically."""
    arrays = {name: np.ascontiguousarray(w, dtype=np.float32) for name, w in state["weights"].items()}
    arrays |= {_MOMENTUM + name: np.ascontiguousarray(b, dtype=np.float32) for name, b in state["momentum"].items()}
    arrays["meta"] = np.array(json.dumps({**meta, "format": _FORMAT}))
    return atomic_write(Path(path), lambda f: np.savez(f, **arrays))


def _format_problem(path: Path, meta: Any) -> str | None:
    """Why ``meta`` is not the metadata of a checkpoint this version reads, or None."""
    found = meta.get("format") if isinstance(meta, dict) else None
    if found in (_FORMAT, _FORMAT_1):
        return None
    if isinstance(found, str) and found.startswith("nin-checkpoint/"):
        return (
            f"{path} is a {found} checkpoint, written by a newer nin-suite; this one reads {_FORMAT_1} and "
            f"{_FORMAT}: upgrade nin-suite to resume it"
        )
    return f"{path} is a {found or type(meta).__name__!r} file, not a nin-checkpoint ({_FORMAT})"


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint`` (format nin-checkpoint/2, or /1 from
    before the spec's canonical JSON); a clear error if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: nothing to resume; start without --resume")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays.pop("meta")))
    except UNREADABLE as e:
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(e).__name__}: {e}); it may be truncated or corrupt: "
            f"start again without --resume in another output folder"
        ) from None
    if problem := _format_problem(path, meta):
        raise CheckpointError(problem)
    if not isinstance(meta.get("epoch"), int) or not isinstance(meta.get("history"), list):
        raise CheckpointError(f"{path} is a damaged checkpoint: its metadata lacks the epoch or history")
    damaged = [k for k, v in arrays.items() if v.dtype.kind != "f" or not np.isfinite(v).all()]
    if damaged:
        raise CheckpointError(f"{path} holds non-finite or non-float tensors: {', '.join(damaged)}")
    momentum = {k[len(_MOMENTUM) :]: v for k, v in arrays.items() if k.startswith(_MOMENTUM)}
    weights = {k: v for k, v in arrays.items() if not k.startswith(_MOMENTUM)}
    return Checkpoint(meta["epoch"], {"weights": weights, "momentum": momentum}, meta)


def _json_differences(there: Any, now: Any, where: str = "spec") -> list[str]:
    """Where two JSON values differ, as ``"spec.layers[4].rate 0.5 there, 0.0 now"``."""
    if isinstance(there, dict) and isinstance(now, dict):
        keys = [*now, *(k for k in there if k not in now)]
        return [d for k in keys for d in _json_differences(there.get(k), now.get(k), f"{where}.{k}")]
    if isinstance(there, list) and isinstance(now, list) and len(there) == len(now):
        return [
            d for i, (a, b) in enumerate(zip(there, now, strict=True)) for d in _json_differences(a, b, f"{where}[{i}]")
        ]
    return [] if there == now else [f"{where} {json.dumps(there)} there, {json.dumps(now)} now"]


def _spec_differences(saved: dict[str, Any], spec: NiNSpec) -> list[str]:
    """How a nin-checkpoint/2's spec differs from ``spec`` (at most three places named)."""
    there, now = saved.get("spec"), spec_json(spec)
    if there == now:  # JSON data: key order does not count, floats round-trip exactly
        return []
    differences = _json_differences(there, now)
    more = f" and {len(differences) - 3} more" if len(differences) > 3 else ""
    return ["; ".join(differences[:3]) + more]


def check_resume(path: Path, saved: dict[str, Any], now: dict[str, Any], spec: NiNSpec) -> None:
    """Everything but the backend and the number of epochs must match.  A recipe field the
    checkpoint lacks (added to ``Recipe`` since) counts as its default."""
    problems = []
    for key in ("model", "in_channels", "input_size", "num_classes", "data"):
        if saved.get(key) != now[key]:
            problems.append(f"{key} {saved.get(key)!r} there, {now[key]!r} now")
    format_1 = saved["format"] == _FORMAT_1
    if not problems and not format_1:  # another model's spec differs everywhere: its name says enough
        problems += _spec_differences(saved, spec)
    defaults, recipe = Recipe().to_json(), saved.get("recipe") or {}
    for key, value in now["recipe"].items():
        if key != "epochs" and recipe.get(key, defaults[key]) != value:
            problems.append(f"{key} {recipe.get(key, defaults[key])!r} there, {value!r} now")
    if problems:
        raise CheckpointError(
            f"{path} is from a different run ({'; '.join(problems)}); "
            f"resume with the same settings, or start afresh in another output folder"
        )
    if format_1 and saved.get("spec") != _format_1_hash(spec):
        raise CheckpointError(
            f"{path} is a {_FORMAT_1} checkpoint, which names its spec by a hash of the spec's Python repr, and "
            f"that hash does not match {spec.name} as this nin-suite defines it (its layers differ, or the spec "
            f"type changed since): resume it with the nin-suite that wrote it, or start afresh in another output folder"
        )
