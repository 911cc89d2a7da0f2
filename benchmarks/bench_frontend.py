"""The MediaPipe front end on real photos: time per face, faces found per detector, and a folder's throughput.

Photos (all from registry packages): scikit-image's astronaut (one face) and its LFW subset (100 faces and
100 non-face patches, 25×25, upscaled to 200×200), insightface's t1.jpg (a group photo of six faces, read as
a file; insightface is never imported) and its Tom_Hanks_54745.png (one face, 112×112). Detectors, side by
side in one run:

- ``mediapipe``: BlazeFace (the bundle's own) on the whole picture and on overlapping tiles (the default);
- ``mediapipe, whole picture``: BlazeFace on the whole picture only (``tiles=False``);
- ``haar``: OpenCV's frontal-face cascades, as the chat crops faces.

A face counts as found when the landmarker confirms it (every reading the front end returns).

    python benchmarks/bench_frontend.py [--repeats 30] [--json] [--no-append]

Floor: a folder of 100 real photos (LFW faces at 250×250, JPEG) reads at ≥ 20 images/s end to end (decode,
detect, landmarks, z), with the default front end; the script exits 1 below it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import append_section, check_floor, run  # noqa: E402

FLOOR_IMAGES_PER_S = 20.0
CONFIGS = {"mediapipe": {}, "mediapipe, whole picture": {"tiles": False}, "haar": {"detector": "haar"}}


def _photos():
    """name -> (RGB array, faces in it by eye)."""
    import numpy as np
    from PIL import Image
    from skimage import data

    insightface = importlib.metadata.distribution("insightface")

    def package_image(rel):
        return np.asarray(Image.open(insightface.locate_file(f"insightface/data/images/{rel}")).convert("RGB"))

    return {"astronaut (skimage)": (data.astronaut(), 1), "t1.jpg (insightface, group)": (package_image("t1.jpg"), 6),
            "Tom_Hanks_54745.png (insightface)": (package_image("Tom_Hanks_54745.png"), 1)}


def _lfw(side: int):
    import cv2
    import numpy as np
    from skimage import data

    out = []
    for gray in data.lfw_subset():
        g = cv2.resize((gray * 255).round().astype(np.uint8), (side, side), interpolation=cv2.INTER_CUBIC)
        out.append(np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2)))
    return out[:100], out[100:]


def _ms_per_read(frontend, image, repeats: int) -> float:
    frontend.read(image)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        frontend.read(image)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def _folder_rate(folder: Path) -> tuple[float, int]:
    """Images per second reading every JPEG of ``folder`` from disk with the default front end; faces found."""
    import numpy as np

    from facr.data.images import open_image
    from facr.frontends.mediapipe import MediaPipeFrontend

    files = sorted(folder.glob("*.jpg"))
    with MediaPipeFrontend() as frontend:
        t = time.perf_counter()
        faces = sum(len(frontend.read(np.asarray(open_image(f)), source=str(f))) for f in files)
        return len(files) / (time.perf_counter() - t), faces


def main(argv=None) -> int:
    from PIL import Image

    from facr.frontends.mediapipe import MediaPipeFrontend

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=30, help="timed reads of the astronaut per detector")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-append", action="store_true", help="do not append the table to BENCHMARKS.md")
    args = p.parse_args(argv)

    photos = _photos()
    faces, non_faces = _lfw(200)
    rows = {}
    for name, options in CONFIGS.items():
        with MediaPipeFrontend(**options) as fe:
            row = {"ms_astronaut": round(_ms_per_read(fe, photos["astronaut (skimage)"][0], args.repeats), 1)}
            for photo, (image, _) in photos.items():
                row[photo] = len(fe.read(image))
            t = time.perf_counter()
            row["lfw_faces"] = sum(bool(fe.read(im)) for im in faces)
            row["lfw_ms_per_image"] = round(1000 * (time.perf_counter() - t) / len(faces), 1)
            row["lfw_non_faces_flagged"] = sum(bool(fe.read(im)) for im in non_faces)
        rows[name] = row
    with tempfile.TemporaryDirectory() as tmp:
        for i, im in enumerate(_lfw(250)[0]):
            Image.fromarray(im).save(Path(tmp) / f"lfw{i:03d}.jpg", quality=92)
        rate, folder_faces = _folder_rate(Path(tmp))

    head = ["detector", "ms / read (astronaut, 1 face)", *(f"{k}: faces ({v[1]} by eye)" for k, v in photos.items()),
            "LFW: faces found (of 100)", "LFW: ms / image", "LFW non-faces flagged (of 100)"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, r in rows.items():
        cells = [name, f"{r['ms_astronaut']:.1f}", *(str(r[k]) for k in photos), str(r["lfw_faces"]),
                 f"{r['lfw_ms_per_image']:.1f}", str(r["lfw_non_faces_flagged"])]
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines) + (f"\n\nA folder of 100 LFW faces (250×250 JPEG), read from disk with the default "
                                f"front end: **{rate:.1f} images/s** ({folder_faces} faces found; floor "
                                f"{FLOOR_IMAGES_PER_S:g} images/s).")
    if not args.no_append:
        append_section("The MediaPipe front end on real photos: time per face, faces found per detector", table,
                       "A face counts when the landmarker confirms it. ms / read: median of "
                       f"{args.repeats} reads after one warm-up, whole pipeline (detect, landmarks, z).")
    print(json.dumps({"detectors": rows, "folder_images_per_s": round(rate, 2), "folder_faces": folder_faces},
                     indent=2) if args.json else table)
    return check_floor("images/s on a folder of 100 real photos", rate, FLOOR_IMAGES_PER_S)


if __name__ == "__main__":
    sys.exit(run(main))
