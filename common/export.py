"""``nin export``: a NiN with given weights, written in a deployment format.

``onnx`` is the framework-free graph of ``nin.onnx`` (whatever the backend); the native
formats come from the backend that owns them (``nin.frameworks.export_formats``):
TorchScript (torch), SavedModel (tensorflow), serialized StableHLO from ``jax.export`` (jax)
and Gluon's symbol + params export (mxnet), each written by that backend's ``export.py``.
Every output appears whole or not at all: it is written in a fresh staging folder beside
``out`` (``nin.files.staging_beside``; ONNX through ``nin.files.atomic_write``) and renamed into
place; an existing folder is never replaced, and what a killed export leaves behind
(``{out}.*.tmp``) is never reused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .errors import NinError, UnknownNameError
from .files import check_output_file, place, staging_beside
from .spec import NiNSpec
from .weights import Weights

ONNX = "onnx"


def formats() -> dict[str, str]:
    """Every format ``nin export`` writes → the backend that writes it ("" for onnx: none)."""
    from .frameworks import export_formats, list_backends

    return {ONNX: "", **{fmt: name for name in list_backends() for fmt in export_formats(name)}}


def exporter_backend(fmt: str, backend: str | None) -> str | None:
    """The backend that writes ``fmt`` (None for onnx), checked against ``backend`` if given."""
    known = formats()
    if fmt not in known:
        raise UnknownNameError(f"unknown export format {fmt!r}; known formats: {', '.join(known)}")
    owner = known[fmt] or None
    if backend is not None and owner is not None and backend != owner:
        from .frameworks import export_formats, list_runtimes

        if backend not in list_runtimes():
            raise UnknownNameError(f"unknown backend {backend!r}; known backends: {', '.join(list_runtimes())}")
        own = ", ".join([*export_formats(backend), ONNX])
        raise NinError(f"the {backend} backend does not write {fmt} (it writes {own}); {fmt} comes from {owner}")
    return owner


def export(spec: NiNSpec, weights: Weights, fmt: str, out: str | Path, backend: str | None = None) -> Path:
    """Write the NiN of ``spec`` holding ``weights`` to ``out`` in ``fmt`` (see ``formats``).
    ``out``'s folder must exist and accept files, and ``out`` must not be an existing folder
    (``nin.files.check_output_file``); both are checked before anything is built."""
    from . import onnx as nin_onnx

    owner = exporter_backend(fmt, backend)
    out = check_output_file(out)
    if owner is None:
        return nin_onnx.save_model(spec, weights, out)
    from .frameworks import get_backend

    adapter = get_backend(owner)
    model = adapter.build(spec)
    adapter.load_state(model, weights)
    with staging_beside(out) as staged:
        adapter.export_model(model, staged, fmt)
        return place(staged, out)


def run_exported(path: str | Path, fmt: str, x: np.ndarray) -> np.ndarray:
    """Reload an export with its own runtime (onnxruntime for onnx) and run it on an NCHW batch."""
    owner = exporter_backend(fmt, None)
    from .frameworks import get_backend

    if owner is None:
        return get_backend("onnxruntime").run_file(path, x)  # a clear error where it is missing
    return get_backend(owner).run_exported(path, fmt, x)  # the framework with its backend's own settings


HELP = "write a model with its weights as ONNX or a framework's deployment format"


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from .files import output_file
    from .frameworks import list_runtimes
    from .zoo import list_models

    p.add_argument("model", help=f"one of: {', '.join(list_models())}")
    p.add_argument(
        "--weights",
        metavar="FILE",
        help="canonical weights (.npz, .safetensors, a nin train checkpoint) or 'pretrained' "
        "(default: the shipped weights where the model has them)",
    )
    p.add_argument(
        "--format",
        required=True,
        choices=list(formats()),
        help="onnx: the framework-free graph (nin.onnx); "
        + "; ".join(f"{fmt}: the {name} backend's" for fmt, name in formats().items() if name),
    )
    p.add_argument("--backend", choices=list_runtimes(), help="the backend (must own --format; any for onnx)")
    p.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        type=output_file,
        help="file (onnx, torchscript, stablehlo) or new folder",
    )
    return p


def run(args: argparse.Namespace) -> int:
    from . import reference
    from .checks import max_rel_error, sample_batch
    from .pretrained_weights import resolve_weights
    from .zoo import get_spec

    spec = get_spec(args.model)
    owner = exporter_backend(args.format, args.backend)
    weights, note = resolve_weights(spec, args.weights)
    if weights is None:
        raise NinError(f"{note}: pass --weights FILE (.npz, .safetensors or a nin train checkpoint)")
    out = export(spec, weights, args.format, args.out, args.backend)
    x = sample_batch(spec, 2)
    got, want = run_exported(out, args.format, x), reference.forward(spec, weights, x)[0]
    writer = f"{owner} backend" if owner else "nin.onnx"
    print(f"wrote {out}: {spec.name} as {args.format} (by {writer}); {note}")
    print(
        f"reloaded and run on 2 random inputs: max|logits − NumPy oracle| = {float(np.max(np.abs(got - want))):.1e} "
        f"({max_rel_error(got, want):.1e}·max|ref|)"
    )
    return 0
