"""The website's generated content: each framework's code in tabs (cut from the backends' files
at build time), the model zoo's layer tables, and the latest conformance matrix and benchmark
runs drawn from their JSON in docs/data/.

Every list here comes from the suite itself: the backends from the registry
(``nin.frameworks.list_backends``), the models from the zoo, the runs from the files.
"""

from __future__ import annotations

import inspect
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nin
from nin import bench, conformance
from nin.errors import NinError
from nin.frameworks import backend_record, list_backends, source
from nin.frameworks.record import OPTIONAL_PARTS
from nin.summary import summary_text
from nin.tables import markdown_table

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "docs" / "data"
RESULTS = "results"  # the results page's plots


@dataclass(frozen=True)
class CodeUnit:
    """One piece of every framework backend, shown in tabs: the definitions ``names`` of its
    ``file`` (the first is required, the others shown where the backend has them), or the code
    lines of the file's module docstring.  ``part``: the optional part the file belongs to."""

    title: str
    file: str
    names: tuple[str, ...] = ()
    with_classes: bool = False
    part: str | None = None


UNITS: dict[str, CodeUnit] = {
    "nin_block": CodeUnit("One mlpconv block: `nin_block`", "model", ("nin_block",), with_classes=True),
    "model": CodeUnit("The network: `NiN`", "model", ("NiN",)),
    "training_step": CodeUnit("The training step: `Trainer.step`", "train", ("Trainer.step", "_train_step")),
    "distributed": CodeUnit("Data-parallel training: the engine's lines", "distributed", part="distributed"),
}

MARKER = re.compile(r"^<!-- framework-tabs: (\w+) -->\n(?:(`{3,})[^\n]*\n.*?^\2[ \t]*\n)?", re.M | re.S)


def display_path(path: Path) -> str:
    """A backend file's path as a reader of the repository knows it."""
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return f"{path.parent.name}/{path.name}"


def snippets(backend: str, unit: CodeUnit) -> list[source.Snippet] | str:
    """What backend ``backend`` shows for ``unit``: its snippets, or why it has none (its
    record's reason for lacking the part)."""
    record = backend_record(backend)
    if unit.part is not None and unit.part not in record.parts:
        title = OPTIONAL_PARTS[unit.part].title
        return f"The {backend} backend has no {title}: {record.lacks.get(unit.part, 'it has none')}."
    if not unit.names:
        return source.docstring_code(backend, unit.file)
    found = []
    for k, name in enumerate(unit.names):
        got = source.definition(backend, unit.file, name, with_classes=unit.with_classes)
        if got is None and k == 0:
            path = display_path(source.source_path(backend, unit.file))
            raise NinError(f"backend {backend!r}: {path} defines no {name}, which the website shows")
        found += got or []
    return found


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" if line else "" for line in text.splitlines())


def framework_tabs(unit_name: str) -> str:
    """Markdown: one content tab per framework backend of the registry, with ``unit``'s code
    of that backend (file name and line numbers as in the repository)."""
    if unit_name not in UNITS:
        raise NinError(f"unknown framework-tabs unit {unit_name!r}; known: {', '.join(UNITS)}")
    unit = UNITS[unit_name]
    tabs = []
    for backend in list_backends():
        shown = snippets(backend, unit)
        if isinstance(shown, str):
            body = shown
        else:
            body = "\n\n".join(
                f'```python title="{display_path(s.path)}" linenums="{s.first_line}"\n{s.code}\n```' for s in shown
            )
        tabs.append(f'=== "{backend}"\n\n{_indent(body)}\n')
    return "\n".join(tabs)


def expand_markers(markdown: str) -> str:
    """Every ``<!-- framework-tabs: UNIT -->`` line replaced by the tabs of ``UNIT``, together
    with the fenced code block right under it, if any (the README's abridged code, which the
    tabs show whole)."""
    return MARKER.sub(lambda m: "\n" + framework_tabs(m.group(1)) + "\n", markdown)


def side_by_side() -> str:
    """The page of every framework's code, unit by unit."""
    parts = [
        "# The frameworks side by side",
        "Each framework backend builds the same framework-free spec (`nin.NiNSpec`) in its own idiom, "
        "with the same names in every one ([the backend contract](backends.md)). The code below is cut "
        "out of the backends' files when this site is built, so it is the code that runs and that the "
        "conformance suite checks; the tabs of one label switch together.",
    ]
    for name, unit in UNITS.items():
        parts += [f"## {unit.title}", framework_tabs(name)]
    return "\n\n".join(parts) + "\n"


def zoo() -> str:
    """The page of every zoo model's layer table (``nin summary MODEL``)."""
    parts = [
        "# The model zoo",
        "Every network of `nin.list_models()`, each with the layer table `nin summary MODEL` prints: "
        "output shape, parameters and multiply-accumulates per layer, computed from the spec without a "
        "framework (`nin.layer_table`). `nin.get_spec(name, num_classes=..., in_channels=..., "
        "input_size=...)` builds a variant.",
    ]
    for name in nin.list_models():
        spec = nin.get_spec(name)
        doc = inspect.getdoc(getattr(nin.zoo, name)) or ""
        parts += [f"## {name}", doc.replace("\n", " ")]
        if spec.source:
            parts.append(f"Source: {spec.source}.")
        parts.append(f"```text\n{summary_text(spec)}\n```")
    return "\n\n".join(parts) + "\n"


def latest(pattern: str) -> list[Path]:
    """The files of ``docs/data`` matching ``pattern`` (``conformance-*.json``) from the latest
    date their names carry (YYYY-MM-DD), in name order."""
    dated: dict[str, list[Path]] = {}
    for path in sorted(DATA.glob(pattern)):
        day = re.search(r"\d{4}-\d{2}-\d{2}", path.name)
        if day:
            dated.setdefault(day.group(), []).append(path)
    return dated[max(dated)] if dated else []


def results() -> tuple[str, dict[str, bytes]]:
    """The results page (the latest conformance matrix and benchmark runs) and its plots."""
    parts = [
        "# Results",
        "Drawn from the JSON in [`docs/data/`](#the-files) when this site is built: the latest "
        "conformance matrix (`nin conformance --json`) and the latest benchmark runs "
        "(`nin bench --json`). How they are measured: [conformance](conformance.md), [benchmarks](benchmarks.md).",
    ]
    plots: dict[str, bytes] = {}
    matrices = latest("conformance-*.json")
    if matrices:
        parts += ["## Conformance"]
        for path in matrices:
            lines, plots[f"{RESULTS}/{path.stem}.png"] = _conformance(path)
            parts += lines
    runs = latest("bench-*.json")
    if runs:
        parts += ["## Benchmarks"]
        loaded = [bench.load_result(path) for path in runs]
        for path, result in zip(runs, loaded, strict=True):
            plot = f"{RESULTS}/{path.stem}.png"
            plots[plot] = _plot(result)
            parts += [
                f"### `{path.name}`",
                bench.bench_markdown(result),
                f"![{path.stem}: per-round ratios (points) and their medians (bars)]({plot})",
            ]
        for a, b in _repeated_runs(runs):
            table = bench.agreement_markdown(bench.agreement(loaded[a], loaded[b]))
            question = f"Do `{runs[a].name}` (A) and `{runs[b].name}` (B) agree?"
            parts.append(f'??? note "{question}"\n\n{_indent(table)}')
    files = sorted(DATA.glob("*.json"))
    parts += ["## The files", "\n".join(f"* [`{p.name}`](data/{p.name})" for p in files)]
    return "\n\n".join(parts) + "\n", plots


def _repeated_runs(runs: list[Path]) -> list[tuple[int, int]]:
    """The pairs of runs that repeat one measurement, named alike but for a last letter
    (``bench-DATE-idle-a.json``, ``...-idle-b.json``): those that ``--agree`` compares.  Runs
    of other backends, environments or loads are not a repetition of each other."""
    stem = [re.sub(r"-[a-z]$", "", path.stem) if re.search(r"-[a-z]$", path.stem) else None for path in runs]
    return [(k - 1, k) for k in range(1, len(runs)) if stem[k] is not None and stem[k] == stem[k - 1]]


def _figures(cell: dict) -> dict[str, float | None]:
    """A conformance cell's figures (``nin.checks``): the worst forward error (every layer and the
    logits), the gradient error, and the K-step error, each None where the cell has no such check."""
    checks = {check["property"]: check for check in cell.get("checks", [])}
    forward = [checks[p]["figure"] for p in ("layers", "logits") if p in checks]
    return {
        "forward": max(forward) if forward else None,
        "gradients": checks["gradients"]["figure"] if "gradients" in checks else None,
        "sgd steps": checks["sgd steps"]["figure"] / checks["sgd steps"]["allowed"] if "sgd steps" in checks else None,
    }


def _conformance(path: Path) -> tuple[list[str], bytes]:
    """A conformance run as Markdown (the matrix: a row per case, a column per runtime; the
    whole table folded under it) and its picture (each error as a share of its bound)."""
    result = json.loads(path.read_text(encoding="utf-8"))
    cells = result["cells"]
    runtimes = list(dict.fromkeys(c["backend"] for c in cells))
    models = list(dict.fromkeys(c["model"] for c in cells))
    by_case = {(c["backend"], c["model"]): c for c in cells}
    bounds = result["tolerances"]

    def matrix_cell(cell: dict | None) -> str:
        if cell is None:
            return "-"
        figures = _figures(cell)
        if figures["sgd steps"] is not None:
            text = f"{figures['sgd steps']:.0e} of its bound"
        elif figures["forward"] is not None:
            grad = "" if figures["gradients"] is None else f" / {figures['gradients']:.0e}"
            text = f"{figures['forward']:.0e}{grad}"
        else:
            text = "no figure"
        return text + ("" if cell["status"] == "ok" else f" **{cell['status'].upper()}**")

    rows = [(model, *(matrix_cell(by_case.get((b, model))) for b in runtimes)) for model in models]
    versions = ", ".join(dict.fromkeys(c["framework"] for c in cells))
    unavailable = "".join(f" {name} could not run: {why}." for name, why in result["cannot_run"].items())
    n_ok = sum(c["status"] == "ok" for c in cells)
    lines = [
        f"`{path.name}`: {n_ok} of {len(cells)} cells hold every property ({versions}).{unavailable} "
        f"Each model cell: the largest error of every layer's output and the logits / of every weight's gradient, "
        f"relative to the largest reference value (the float64 NumPy oracle), allowed "
        f"{bounds['forward']:.0e} / {bounds['gradients']:.0e}; the shapes and parameter counts are checked too. "
        "Each K-step cell: the largest error of the trainer's weights and momentum after K SGD steps as a share "
        "of its bound.",
        markdown_table(("case", *runtimes), rows),
        f"![{path.stem}: each error as a share of its bound]({RESULTS}/{path.stem}.png)",
        f'??? note "The whole table (`nin conformance --markdown`)"\n\n{_indent(conformance.conformance_markdown(result))}',
    ]
    return lines, _conformance_plot(result, runtimes, models, by_case)


def _conformance_plot(result: dict, runtimes: list[str], models: list[str], by_case: dict) -> bytes:
    """Two heat maps, forward and gradient: each cell's error over its bound, on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    bounds = result["tolerances"]
    panels = (("forward", bounds["forward"]), ("gradients", bounds["gradients"]))
    models = [m for m in models if any(_figures(c)["forward"] is not None for (_, mm), c in by_case.items() if mm == m)]
    fig, axes = plt.subplots(1, 2, figsize=(4 + 1.6 * len(runtimes), 1.2 + 0.32 * len(models)), sharey=True)
    for ax, (key, bound) in zip(axes, panels, strict=True):
        share = np.full((len(models), len(runtimes)), np.nan)
        for (backend, model), cell in by_case.items():
            figure = _figures(cell)[key]
            if model in models and figure is not None:
                share[models.index(model), runtimes.index(backend)] = figure / bound
        image = ax.imshow(np.log10(np.maximum(share, 1e-12)), cmap="viridis", vmin=-4, vmax=0, aspect="auto")
        for (i, j), value in np.ndenumerate(share):
            ax.text(j, i, "n/a" if np.isnan(value) else f"{value:.0e}", ha="center", va="center", fontsize=7,
                    color="black" if np.isnan(value) or value > 1e-2 else "white")  # fmt: skip
        ax.set_xticks(range(len(runtimes)), runtimes, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(models)), models, fontsize=8)
        ax.set_title(f"{key}: error / {bound:.0e}", fontsize=9)
    fig.colorbar(image, ax=axes, label="log10(error / bound)", shrink=0.8)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "conformance.png"
        fig.savefig(out, dpi=100, bbox_inches="tight")
        plt.close(fig)
        return out.read_bytes()


def _plot(result: bench.BenchResult) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return bench.bench_plot(result, Path(tmp) / "plot.png").read_bytes()
