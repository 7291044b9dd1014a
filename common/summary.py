"""``nin summary``: the layer summary (d2l's ``layer_summary``, with parameters and MACs), from
the spec or read off a live native model."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from .errors import WeightsError
from .shapes import LayerInfo, layer_table
from .spec import NiNSpec
from .tables import text_table


def backend_layer_table(spec: NiNSpec, backend: str) -> list[LayerInfo]:
    """The layer table measured on a backend's live model: output shapes from its
    ``intermediates`` on a zero batch, parameters from its exported weights; kinds and MACs
    come from the spec (they are not observable)."""
    from .frameworks import get_backend

    adapter = get_backend(backend)
    model = adapter.build(spec)
    acts = adapter.intermediates(model, np.zeros((1, spec.in_channels, *spec.input_size), np.float32))
    weights = adapter.export_state(model)
    params: dict[str, int] = {}
    for name, value in weights.items():
        layer = name.rsplit(".", 1)[0]
        params[layer] = params.get(layer, 0) + int(value.size)
    rows = []
    for row in layer_table(spec):
        shape = tuple(acts[row.name].shape[1:]) if row.name in acts else ()
        rows.append(LayerInfo(row.name, row.kind, shape, params.get(row.name, 0), row.macs))
    if sum(r.params for r in rows) != adapter.param_count(model):
        raise WeightsError(
            f"{backend}: the exported weights hold {sum(r.params for r in rows):,} parameters but the {backend} model "
            f"counts {adapter.param_count(model):,}; its export_state misses or invents tensors (a backend bug: report it)"
        )
    return rows


def summary_json(spec: NiNSpec, rows: list[LayerInfo] | None = None) -> dict:
    rows = layer_table(spec) if rows is None else rows
    return {
        "model": spec.name,
        "input_shape": [spec.in_channels, *spec.input_size],
        "num_classes": spec.num_classes,
        "layers": [
            {"name": r.name, "kind": r.kind, "output_shape": list(r.output_shape), "params": r.params, "macs": r.macs}
            for r in rows
        ],
        "total_params": sum(r.params for r in rows),
        "total_macs": sum(r.macs for r in rows),
        "total_activations": sum(r.activations for r in rows),
    }


def summary_text(spec: NiNSpec, rows: list[LayerInfo] | None = None, backend: str | None = None) -> str:
    rows = layer_table(spec) if rows is None else rows
    body = [(r.name, r.kind, "×".join(map(str, r.output_shape)), f"{r.params:,}", f"{r.macs:,}") for r in rows]
    total_params, total_macs = sum(r.params for r in rows), sum(r.macs for r in rows)
    body.append(("total", "", "", f"{total_params:,}", f"{total_macs:,}"))
    source = f"read off the live {backend} model" if backend else "from the spec"
    size = "×".join(map(str, (spec.in_channels, *spec.input_size)))
    head = f"{spec.name}: input {size}, {spec.num_classes} classes ({source})"
    acts = sum(r.activations for r in rows)
    foot = (
        f"{total_params:,} parameters ({4 * total_params / 2**20:.2f} MiB float32), "
        f"{total_macs / 1e6:,.1f} M multiply-accumulates and {acts:,} activations "
        f"({4 * acts / 2**20:.2f} MiB float32) per example"
    )
    table = text_table(("layer", "kind", "output", "params", "MACs"), body, right=(3, 4))
    return "\n".join([head, "", table, "", foot])


HELP = "layer table of a zoo model: shapes, parameters, MACs"


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from .frameworks import list_backends
    from .zoo import list_models

    p.add_argument("model", help=f"one of: {', '.join(list_models())}")
    p.add_argument("--input-size", type=int, nargs="+", metavar="N", help="spatial size, e.g. 96 96")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--in-channels", type=int)
    p.add_argument("--backend", choices=list_backends(), help="read the table off this framework's live model")
    p.add_argument(
        "--format", choices=("text", "json"), default="text", help="json: print one JSON object (default text)"
    )
    # before --format: a flag that printed JSON here but names a file in every other command
    p.add_argument("--json", action="store_true", help="deprecated: use --format json")
    return p


def run(args: argparse.Namespace) -> int:
    from .commands import check_input_size
    from .zoo import get_spec

    if args.json:
        print("nin summary: --json is deprecated and will be removed in the next release; use --format json",
              file=sys.stderr)  # fmt: skip
    spec = get_spec(args.model, num_classes=args.num_classes, in_channels=args.in_channels)
    if args.input_size:
        check_input_size(spec, args.input_size)
        spec = get_spec(
            args.model, num_classes=args.num_classes, in_channels=args.in_channels, input_size=tuple(args.input_size)
        )
    rows = backend_layer_table(spec, args.backend) if args.backend else None
    if args.json or args.format == "json":
        print(json.dumps(summary_json(spec, rows)))
    else:
        print(summary_text(spec, rows, args.backend))
    return 0
