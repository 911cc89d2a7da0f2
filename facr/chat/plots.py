"""The chat's two pictures, rendered to RGB arrays: the AU latent as bars, and Pa(ĉ) in G drawn signed.

Matplotlib's object API (``Figure``), not pyplot: the app draws from several threads.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from facr import au as au_vocab
from facr.au import ACTIVE
from facr.chat.explainer import Reading
from facr.graph.draw import NEGATIVE, POSITIVE


def _to_array(fig) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def au_bars(reading: Reading, signs: dict[str, int] | None = None) -> np.ndarray:
    """z_k for every AU as a bar, the active threshold as a line; bars of Pa(ĉ) coloured by their edge's
    sign, AUs set by a what-if hatched and labelled ``do``; an AU the front end cannot see has no bar but
    the words "not seen by this front end" (its z is no reading, not 0)."""
    from matplotlib.figure import Figure

    signs = signs or {}
    aus = reading.aus
    z = reading.z.numpy()
    fig = Figure(figsize=(4.6, 0.2 * len(aus) + 1.0), dpi=100)
    ax = fig.add_subplot(111)
    y = np.arange(len(aus))[::-1]
    colors = [POSITIVE if signs.get(a, 0) > 0 else NEGATIVE if signs.get(a, 0) < 0 else "#7f8c99" for a in aus]
    bars = ax.barh(y, z, color=colors, height=0.7)
    for bar, a, yk in zip(bars, aus, y):
        if a in reading.settings:
            bar.set_hatch("///")
            bar.set_edgecolor("black")
        elif not reading.seen(a):
            bar.set_visible(False)
            ax.text(0.01, yk, "not seen by this front end", va="center", fontsize=6, color="#7f8c99", style="italic")
    ax.axvline(ACTIVE, color="black", linestyle="--", linewidth=1)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{a} do" if a in reading.settings else a if reading.seen(a) else f"{a} ?" for a in aus],
                       fontsize=7)
    ax.set_xlim(0, 1)
    blind = "; ?: not seen by the front end" if not all(reading.seen(a) for a in aus) else ""
    ax.set_xlabel(f"z; dashed: active at ½; hatched: set by do(){blind}", fontsize=7)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(f"Pa({reading.predicted}): green +, red −", fontsize=8)
    fig.tight_layout()
    return _to_array(fig)


def parents_figure(parents: list[tuple[str, int, float, str]], reading: Reading, graph_name: str,
                   unseen: Iterable[str] = ()) -> np.ndarray:
    """Pa(ĉ) → ĉ: one signed edge per parent (green +, red −, width = weight), each AU labelled with its z
    and its measured Δ on this face, or "not seen by the front end" for those in ``unseen`` (and for AUs the
    reading marks not coded)."""
    from matplotlib.figure import Figure

    cls = reading.predicted
    n = max(len(parents), 1)
    fig = Figure(figsize=(4.6, 0.32 * n + 1.0), dpi=100)
    ax = fig.add_subplot(111)
    ax.axis("off")
    ax.set_xlim(-1.3, 1.5)
    ax.set_ylim(-0.7, n - 0.3)
    yc = (n - 1) / 2.0
    wmax = max((w for _, _, w, _ in parents), default=1.0) or 1.0
    for i, (a, s, w, _prov) in enumerate(parents):
        y = n - 1 - i
        active = float(reading.z[reading.aus.index(a)]) >= ACTIVE if a in reading.aus else False
        ax.annotate("", xy=(0.95, yc), xytext=(0.05, y),
                    arrowprops=dict(arrowstyle="-|>", color=POSITIVE if s > 0 else NEGATIVE,
                                    lw=0.8 + 2.2 * w / wmax, alpha=0.85 if active else 0.35))
        if a in unseen or (a in reading.aus and not reading.seen(a)):
            detail = "not seen by the front end"
        elif a in reading.aus:
            detail = f"z={float(reading.z[reading.aus.index(a)]):.2f}  Δ={reading.effect(a, cls):+.2f}"
        else:
            detail = "not in the model's latent"
        ax.text(0.0, y, f"{'+' if s > 0 else '−'} {a} {au_vocab.info(a).name.lower()}\n{detail}",
                ha="right", va="center", fontsize=7, fontweight="bold" if active else "normal")
    ax.text(1.0, yc, cls, ha="left", va="center", fontsize=11, fontweight="bold", color="#2b5c8a")
    title = f"Pa({cls}) in G {graph_name}" if parents else f"G {graph_name} has no parents for {cls}"
    ax.set_title(title + " (faded: inactive)", fontsize=7)
    fig.tight_layout()
    return _to_array(fig)
