"""A captioned PNG grid of a benchmark folder's images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facr.data.synth.writer import read_config


def preview_grid(root: str | os.PathLike, out: str | os.PathLike, *, n: int = 32, split: str | None = None,
                 columns: int = 8, seed: int = 0, scale: int = 2) -> Path:
    """Save a PNG grid of ``n`` images of a synth folder, each captioned with its emotion, PSPI and active AUs.

    Images are taken evenly across ``split`` (default: all splits), enlarged ``scale``× (nearest).
    """
    import datasets
    from PIL import Image, ImageDraw, ImageFont

    from facr.errors import DataFormatError
    from facr.utils import atomic_path

    root = Path(root)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    doc = read_config(root)
    try:
        dd = datasets.load_from_disk(str(root))
    except (FileNotFoundError, ValueError) as exc:
        raise DataFormatError(root, f"cannot load the dataset: {exc}") from None
    names = [split] if split else [s for s in ("train", "val", "test") if s in dd]
    if split and split not in dd:
        raise DataFormatError(root, f"no split {split!r} (splits: {', '.join(dd)})")
    pool = [(s, i) for s in names for i in range(len(dd[s]))]
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(pool), size=min(n, len(pool)), replace=False).tolist())
    aus = doc["aus"]
    size = int(doc["config"]["size"]) * scale
    cap = 44
    font = ImageFont.load_default(size=12)
    cols = min(columns, len(pick))
    rows_ = (len(pick) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * size, rows_ * (size + cap)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for j, p in enumerate(pick):
        s, i = pool[p]
        row = dd[s][i]
        img = row["image"].convert("RGB").resize((size, size), Image.NEAREST)
        x, y = (j % cols) * size, (j // cols) * (size + cap)
        sheet.paste(img, (x, y))
        active = [a for a, v in zip(aus, row["au_intensity"]) if v > 0]
        head = f"{row['emotion']}" + (f"  PSPI {row['pspi']:g}" if row["pspi"] > 0 else "")
        lines = [head] + _wrap(" ".join(a.removeprefix("AU") for a in active) or "-", size, font, draw)
        for k, text in enumerate(lines[:3]):
            draw.text((x + 3, y + size + 1 + 14 * k), text, fill=(0, 0, 0), font=font)
    out = Path(out)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    return out


def _wrap(text: str, width: int, font, draw) -> list[str]:
    words, lines, cur = text.split(), [], ""
    for w in words:
        trial = f"{cur} {w}".strip()
        if draw.textlength("AU " + trial, font=font) > width - 6 and cur:
            lines.append(cur)
            cur = w
        else:
            cur = trial
    lines.append(cur)
    return ["AU " + lines[0]] + lines[1:]
