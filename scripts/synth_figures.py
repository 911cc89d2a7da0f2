"""Make the README's figures of the synthetic benchmark (docs/synth_grid.png, docs/synth_aus.png).

    python scripts/synth_figures.py

The grid is what ``facr data preview`` writes for a 2000-image dataset (seed 0, shortcut 0.9);
the AU sheet shows each AU alone at intensity 5 on four subjects (row: subject and style).
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


def main() -> int:
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        S.write_synth(Path(tmp) / "ds", S.SynthConfig(n=2000, seed=0, shortcut=0.9))
        S.preview_grid(Path(tmp) / "ds", docs / "synth_grid.png", n=24, columns=8)
    au_sheet(docs / "synth_aus.png")
    print("wrote docs/synth_grid.png and docs/synth_aus.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
