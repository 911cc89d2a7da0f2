"""A picture of G: AUs on the left, classes on the right, green + / red −, width = weight."""

from __future__ import annotations

import os
from pathlib import Path

from facr import au as au_vocab
from facr.graph.core import AUGraph
from facr.utils import atomic_path

POSITIVE = "#1a9850"
NEGATIVE = "#d73027"
EDGE_ALPHA = 0.75
_DASHED = {"induced-l1", "neighborhood", "permuted"}


def draw_graph(graph: AUGraph, path: str | os.PathLike, *, show_au_edges: bool = True, dpi: int = 150) -> Path:
    """Draw ``graph`` to ``path`` (format from the suffix: .png, .svg, .pdf), atomically.

    Edges from verified sources (emfacs, pspi, verified, manual, truth) are solid; learned or
    corrupted ones (induced-l1, neighborhood, permuted) are dashed. AU→AU edges are drawn as
    grey arcs left of the AU column.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch

    aus, classes = graph.aus, graph.classes
    n = max(len(aus), len(classes), 1)
    height = max(3.0, 0.32 * n + 1.2)
    fig, ax = plt.subplots(figsize=(8.5, height))
    ax.set_xlim(-1.05, 1.45)
    ax.set_ylim(-0.8, n - 0.2)
    ax.axis("off")

    def column(items):
        offset = (n - len(items)) / 2.0
        return {item: n - 1 - (offset + i) for i, item in enumerate(items)}

    y_au, y_cls = column(aus), column(classes)
    edges = graph.class_edges()
    wmax = max((e.weight for e in edges), default=1.0) or 1.0
    for e in edges:
        ax.plot(
            [0.0, 1.0], [y_au[e.source], y_cls[e.target]],
            color=POSITIVE if e.sign > 0 else NEGATIVE,
            linewidth=0.6 + 2.4 * e.weight / wmax,
            linestyle="--" if e.provenance in _DASHED else "-",
            alpha=EDGE_ALPHA, solid_capstyle="round", zorder=1,
        )
    if show_au_edges:
        for e in graph.au_edges():
            arrow = FancyArrowPatch(
                (-0.02, y_au[e.source]), (-0.02, y_au[e.target]),
                connectionstyle="arc3,rad=0.6", arrowstyle="-|>", mutation_scale=8,
                color=POSITIVE if e.sign > 0 else NEGATIVE, alpha=0.55, linewidth=0.9, zorder=1,
            )
            ax.add_patch(arrow)
    ax.scatter([0.0] * len(aus), list(y_au.values()), s=28, color="#4d4d4d", zorder=2)
    ax.scatter([1.0] * len(classes), list(y_cls.values()), s=60, color="#2b5c8a", zorder=2)
    for a, y in y_au.items():
        ax.text(-0.45, y, a, ha="right", va="center", fontsize=9, fontweight="bold")
        ax.text(-0.43, y, au_vocab.info(a).name, ha="left", va="center", fontsize=7, color="#555555")
    for c, y in y_cls.items():
        ax.text(1.04, y, c, ha="left", va="center", fontsize=10)
    counts = f"{len(aus)} AUs, {len(classes)} classes, {len(edges)} AU→class, {len(graph.au_edges())} AU→AU edges"
    ax.set_title(f"{graph.name}\n{counts}", fontsize=10)
    legend = [
        Line2D([], [], color=POSITIVE, lw=2, label="+ excitatory"),
        Line2D([], [], color=NEGATIVE, lw=2, label="− inhibitory"),
        Line2D([], [], color="#777777", lw=1.5, ls="-", label="verified (emfacs, pspi, …)"),
        Line2D([], [], color="#777777", lw=1.5, ls="--", label="learned / permuted"),
    ]
    ax.legend(handles=legend, loc="lower center", bbox_to_anchor=(0.5, -0.02), ncol=4, fontsize=7, frameon=False)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
