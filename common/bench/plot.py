"""``nin bench --plot``: the run as a PNG, each ratio as its per-round points and their median."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .records import BenchResult


def bench_plot(result: BenchResult, path: str | Path) -> Path:
    """Two panels per case, each ratio as its per-round points and their median: share of the
    same round's peak (forward, training step), and the book's step time over ours."""
    from ..extras import require_extra

    require_extra("pictures", "--plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in result.records if r.error is None]
    labels = [f"{r.backend}\n{r.model}\nb{r.batch_size}" for r in ok]
    xs = np.arange(len(ok))
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(9, 2.4 * len(ok)), 4.5))
    panels = (
        (left, (("forward_peak_fraction", "forward"), ("train_peak_fraction", "training step")), 100, "% of the same round's peak"),
        (right, (("train_vs_book", "vs book, plain SGD"), ("train_vs_book_recipe", "vs book, equal work")), 1, "book step time / ours"),
    )  # fmt: skip
    for ax, series, scale, ylabel in panels:
        for j, (name, label) in enumerate(series):
            offset = (j - 0.5) * 0.3
            for x, r in zip(xs, ok, strict=True):
                if name in r.ratios:
                    values = scale * np.asarray(r.ratios[name].rounds)
                    ax.scatter(np.full(len(values), x + offset), values, s=12, color=f"C{j}", alpha=0.6)
                    ax.hlines(np.median(values), x + offset - 0.12, x + offset + 0.12, color=f"C{j}")
            ax.scatter([], [], color=f"C{j}", label=label)
        ax.set_xticks(xs, labels, fontsize=8)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    right.axhline(1.2, color="grey", lw=0.8, ls="--")
    left.axhline(80, color="grey", lw=0.8, ls="--")
    fig.suptitle(f"{result.machine}; {result.rounds} interleaved rounds", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
