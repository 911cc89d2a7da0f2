"""Make the README's figures of the synthetic benchmark (docs/synth_grid.png, docs/synth_aus.png,
docs/synth_renderers.png).

    python scripts/synth_figures.py

The grid is what ``facr data preview`` writes for a 2000-image dataset (seed 0, shortcut 0.9);
the AU sheet shows each AU alone at intensity 5 on four subjects (row: subject and style); the
renderer sheet shows where renderers 1 and 2 differ (the mouth under AU25 / AU26, AU14's dimples).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facr.data import synth as S  # noqa: E402


def au_sheet(out: Path, size: int = 112) -> None:
    rng = np.random.default_rng(4)
    idents = [S.random_identity(rng) for _ in range(4)]
    cols = ["neutral", *S.SYNTH_AUS]
    cap = 16
    sheet = Image.new("RGB", (len(cols) * size, cap + len(idents) * size), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=12)
    for j, name in enumerate(cols):
        draw.text((j * size + 4, 1), name, fill=(0, 0, 0), font=font)
    for i, ident in enumerate(idents):
        style = "ab"[i // 2]
        nz = S.Nuisance(noise=0.0, bg_hue=0.55)
        for j, name in enumerate(cols):
            inten = {} if name == "neutral" else {name: 1 if name == "AU43" else 5}
            face = S.render_face(ident, inten, nz, size=size, style=style)
            sheet.paste(Image.fromarray(face), (j * size, cap + i * size))
    sheet.save(out)


RENDERER_COLUMNS = (("neutral", {}), ("AU26 4", {"AU26": 4}), ("AU25 3 AU26 4", {"AU25": 3, "AU26": 4}),
                    ("AU25 3", {"AU25": 3}), ("AU14 1", {"AU14": 1}), ("AU14 3", {"AU14": 3}), ("AU14 5", {"AU14": 5}))


def renderer_sheet(out: Path, size: int = 112) -> None:
    """Two subjects (style a, style b), each drawn by renderer 1 (upper row) and renderer 2 (lower row)."""
    rng = np.random.default_rng(4)
    idents = [S.random_identity(rng) for _ in range(3)]
    rows = [(idents[0], "a", r) for r in S.RENDERERS] + [(idents[2], "b", r) for r in S.RENDERERS]
    cap, lab = 16, 74
    sheet = Image.new("RGB", (lab + len(RENDERER_COLUMNS) * size, cap + len(rows) * size), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=12)
    for j, (name, _) in enumerate(RENDERER_COLUMNS):
        draw.text((lab + j * size + 4, 1), name, fill=(0, 0, 0), font=font)
    nz = S.Nuisance(noise=0.0, bg_hue=0.55)
    for i, (ident, style, renderer) in enumerate(rows):
        draw.text((4, cap + i * size + size // 2 - 6), f"renderer {renderer}", fill=(0, 0, 0), font=font)
        for j, (_, inten) in enumerate(RENDERER_COLUMNS):
            face = S.render_face(ident, inten, nz, size=size, style=style, renderer=renderer)
            sheet.paste(Image.fromarray(face), (lab + j * size, cap + i * size))
    sheet.save(out)


def main() -> int:
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        S.write_synth(Path(tmp) / "ds", S.SynthConfig(n=2000, seed=0, shortcut=0.9))
        S.preview_grid(Path(tmp) / "ds", docs / "synth_grid.png", n=24, columns=8)
    au_sheet(docs / "synth_aus.png")
    renderer_sheet(docs / "synth_renderers.png")
    print("wrote docs/synth_grid.png, docs/synth_aus.png and docs/synth_renderers.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
