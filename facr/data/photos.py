"""Your own photos as a dataset every facr audit reads (``facr data faces``).

Each photo goes through the MediaPipe front end (:class:`facr.frontends.mediapipe.MediaPipeFrontend`):
its largest face's box and 478 landmarks, mapped to the 68-point iBUG layout
(:func:`facr.frontends.mediapipe.to_ibug68`). The folder is written in AffectNet's released layout —
the face cropped square as the chat frames it for a reasoner (:func:`facr.chat.face.square_crop` of
OpenCV's Haar box, else of the landmarks' box: :func:`_reasoner_box`; a PNG), one CSV row
with the face box and the 68 landmarks in that crop's pixels and the emotion you give — so that
``facr audit --format affectnet`` reads it: the reasoner sees the face as it sees the chat's, and
``--pixel-cf`` occludes each AU's landmark region on the real face (EAC-Net ROI centres,
:func:`facr.explain.regions.landmark_roi_masks`), for a facr reasoner and, through
``facr emola generate --model hf-vlm --pixel-cf``, for a VLM.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facr.errors import FacrError

KIND = "photo-faces"


def parse_photo(arg: str, emotion: str | None) -> tuple[Path, str]:
    """``PHOTO`` or ``PHOTO=EMOTION`` → (path, facr emotion). A path that exists as given is a path even
    when it holds ``=``."""
    from facr.data.formats.affectnet import EXPRESSIONS

    path, label = arg, emotion
    if not os.path.exists(arg) and "=" in arg:
        path, _, label = arg.rpartition("=")
    if not os.path.isfile(path):
        raise FacrError(path, "no such photo")
    if not label:
        raise FacrError(path, "no emotion: give PHOTO=EMOTION or --emotion EMOTION (the label the audit scores "
                              "sensitivity and invariance against)")
    if label not in EXPRESSIONS.values():
        raise FacrError(path, f"emotion must be one of {', '.join(EXPRESSIONS.values())}, got {label!r}")
    return Path(path), label


def _reasoner_box(rgb: np.ndarray, landmark_box) -> tuple[int, int, int, int]:
    """The face box (x, y, w, h) a reasoner's crop is framed on: OpenCV's Haar box that overlaps the front
    end's face most (what the chat and ``facr explain maps`` crop, so a reasoner sees the face as it
    sees it there; the framing moves what a benchmark-trained encoder reads), else the box of the front
    end's landmarks. Whole pixels, as AffectNet's box."""
    from facr.chat.face import detect_faces
    from facr.utils import box_overlap

    x0, y0, x1, y1 = (float(v) for v in landmark_box)
    best, best_iou = None, 0.3  # a Haar box must overlap the landmarks' box this much to stand for it
    for bx, by, bw, bh in detect_faces(rgb):
        iou = box_overlap((x0, y0, x1, y1), (bx, by, bx + bw, by + bh))[0]
        if iou > best_iou:
            best, best_iou = (int(bx), int(by), int(bw), int(bh)), iou
    if best is not None:
        return best
    x, y = int(round(x0)), int(round(y0))
    return x, y, int(round(x1)) - x, int(round(y1)) - y


def write_photo_faces(photos: Sequence[tuple[Path, str]], out: str | os.PathLike, *, overwrite: bool = False,
                      split: str = "val") -> dict:
    """Read each (photo, emotion) through the front end and write the AffectNet-layout folder ``out``
    (``split``: ``val`` writes ``validation.csv``, ``train`` ``training.csv``). A photo without a face,
    or one that is not a picture, is one :class:`FacrError` naming it, and nothing is written."""
    from PIL import Image

    from facr.chat.face import read_image, square_box, square_crop
    from facr.data.formats.affectnet import COLUMNS, CSV_FILES, EXPRESSIONS, IMAGE_DIR
    from facr.frontends.mediapipe import MediaPipeFrontend, to_ibug68
    from facr.outputs import output_dir

    code = {name: c for c, name in EXPRESSIONS.items()}
    csv_name = {s: f for f, s in CSV_FILES.items()}[split]
    names = [f"{i:04d}_{p.stem}.png" for i, (p, _) in enumerate(photos)]
    rows, faces, crops = [], [], []
    with MediaPipeFrontend() as frontend:
        for (path, emotion), name in zip(photos, names):
            rgb = read_image(str(path))
            found = frontend.read(rgb, source=str(path))
            if not found:
                H, W = rgb.shape[:2]
                raise FacrError(path, f"no face found ({W}x{H} picture; MediaPipe's face detector)")
            box = _reasoner_box(rgb, found[0].box)
            ox, oy, side = square_box(box)
            crops.append(square_crop(rgb, box))
            points = to_ibug68(found[0].landmarks)[:, :2] - np.array([ox, oy], dtype=np.float32)
            cells = ";".join(f"{v:.2f}" for v in np.asarray(points, dtype=np.float64).reshape(-1))
            rows.append([name, str(box[0] - ox), str(box[1] - oy), str(box[2]), str(box[3]), cells,
                         str(code[emotion]), "-2", "-2"])
            faces.append({"photo": str(path), "image": name, "emotion": emotion, "box_in_photo": list(box),
                          "crop": [ox, oy, side], "faces_found": len(found)})
    out = Path(out)
    with output_dir(out, KIND, overwrite=overwrite, inputs=[p for p, _ in photos]) as tmp:
        images = tmp.joinpath(*IMAGE_DIR)
        images.mkdir(parents=True)
        for crop, name in zip(crops, names):
            Image.fromarray(np.ascontiguousarray(crop)).save(images / name)
        lists = tmp / "Manually_Annotated_file_lists"
        lists.mkdir()
        lines = [",".join(COLUMNS)] + [",".join(r) for r in rows]
        (lists / csv_name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"out": str(out), "format": "affectnet", "split": split, "n": len(rows), "faces": faces}
