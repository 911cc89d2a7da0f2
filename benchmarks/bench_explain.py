"""``facr explain`` end to end: a 640×480 single-face video and a folder of 100 photos, on 2 cores, no LM.

- **video**: an mp4 this script writes with cv2.VideoWriter (scikit-image's astronaut, 400×400, drifting
  across a 640×480 frame; 30 frames/s, ``--frames`` long). Frames/s over the whole loop: decode, detect,
  landmarks, z, head, every do(z_k = 0), the check against G, the CSV row (``--out r.csv``); the start-up
  (imports, MediaPipe and the head loaded) is reported apart. Peak RSS of the whole process.
- **folder**: scikit-image's 100 LFW faces as 250×250 JPEGs (as ``bench_frontend.py``), images/s over
  the loop (decode, detect on the whole picture and on tiles, landmarks, z, head, effects, CSV row).

Each runs in its own child process pinned to 2 CPUs (``os.sched_setaffinity``), with the shipped real-face
head, so the RSS is that run's alone.

    python benchmarks/bench_explain.py [--frames 300] [--json] [--no-append]

Floors (exit 1 below any): video ≥ 30 frames/s, peak RSS < 1 GB; folder ≥ 20 images/s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import append_section, check_floor, run  # noqa: E402 - after the path line

FLOOR_FPS = 30.0
FLOOR_RSS_MB = 1024.0
FLOOR_IMAGES_PER_S = 20.0
CORES = 2


def write_video(path: Path, frames: int) -> None:
    """A 640×480, 30 frames/s mp4 of the astronaut drifting left and right (one face)."""
    import cv2
    import numpy as np
    from skimage import data

    face = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (400, 400))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 480))
    for i in range(frames):
        frame = np.full((480, 640, 3), 40, np.uint8)
        x = int(120 + 110 * np.sin(i / 15))
        frame[40:440, x:x + 400] = face
        writer.write(frame)
    writer.release()


def write_folder(folder: Path) -> None:
    """scikit-image's 100 LFW faces, upscaled to 250×250 grey JPEGs."""
    import cv2
    import numpy as np
    from PIL import Image
    from skimage import data

    folder.mkdir()
    for i, gray in enumerate(data.lfw_subset()[:100]):
        g = cv2.resize((gray * 255).round().astype(np.uint8), (250, 250), interpolation=cv2.INTER_CUBIC)
        Image.fromarray(g).save(folder / f"lfw{i:03d}.jpg", quality=92)


def child(path: str, out: str) -> None:
    """One run of ``facr explain PATH --out OUT`` in this process; prints its timings as JSON."""
    cpus = sorted(os.sched_getaffinity(0))[:CORES]
    os.sched_setaffinity(0, cpus)
    start = time.perf_counter()
    from facr.explain.run import ExplainOptions, explain

    summary = explain(ExplainOptions(input=path, out=out, progress=False, print_faces=False))
    total = time.perf_counter() - start
    c = summary.counts
    print(json.dumps({"seconds": summary.seconds, "total_seconds": total, "faces": summary.n_faces,
                      "frames": c.frames, "images": c.images, "no_face": len(c.no_face), "cpus": cpus,
                      "detector": c.detector, "tiled_again": c.tiled_again}))


def run_child(path: Path, out: Path) -> tuple[dict, float]:
    """(the child's timings, the peak RSS in MB of the largest child so far: RUSAGE_CHILDREN keeps the
    maximum, so the first child's figure is its own)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, __file__, "--child", str(path), str(out)], capture_output=True, text=True,
                          env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench_explain: the child run on {path} failed:\n{done.stderr}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return json.loads(done.stdout.strip().splitlines()[-1]), rss / 1024  # Linux: kilobytes


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=300, help="video length in frames (default 300: 10 s)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-append", action="store_true", help="do not append the table to BENCHMARKS.md")
    p.add_argument("--child", nargs=2, metavar=("INPUT", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_video(tmp / "clip.mp4", args.frames)
        write_folder(tmp / "photos")
        video, video_rss = run_child(tmp / "clip.mp4", tmp / "video.csv")
        folder, _ = run_child(tmp / "photos", tmp / "photos.csv")
    fps = video["frames"] / video["seconds"]
    images_per_s = folder["images"] / folder["seconds"]
    load = os.getloadavg()[0]
    result = {"video_frames_per_s": round(fps, 1), "video_peak_rss_mb": round(video_rss, 1),
              "video_startup_s": round(video["total_seconds"] - video["seconds"], 2), "video": video,
              "folder_images_per_s": round(images_per_s, 1), "folder": folder, "load_average_1min": round(load, 2)}
    table = "\n".join([
        "| input | rate | floor | peak RSS | faces | start-up |",
        "| --- | --- | --- | --- | --- | --- |",
        (f"| video 640×480, {video['frames']} frames, one face ({video['detector']}) | **{fps:.1f} frames/s** | "
         f"{FLOOR_FPS:g} | {video_rss:.0f} MB (floor < {FLOOR_RSS_MB:g}) | {video['faces']} "
         f"({video['tiled_again']} by the tiles only) | {video['total_seconds'] - video['seconds']:.1f} s |"),
        (f"| folder of {folder['images']} LFW photos 250×250 | **{images_per_s:.1f} images/s** | "
         f"{FLOOR_IMAGES_PER_S:g} | | {folder['faces']} ({folder['no_face']} without a face) | "
         f"{folder['total_seconds'] - folder['seconds']:.1f} s |"),
    ])
    notes = (f"Each run in its own process pinned to CPUs {video['cpus']}; the shipped real-face head, no LM; rates "
             f"over the loop (decode → CSV row), start-up apart. 1-minute load average at the end: {load:.1f} "
             f"(a shared machine: other jobs run beside it).")
    if not args.no_append:
        append_section("facr explain end to end: video and a folder of photos", table, notes)
    print(json.dumps(result, indent=2) if args.json else f"{table}\n\n{notes}")
    status = check_floor("video frames/s (640x480, one face, 2 cores)", fps, FLOOR_FPS)
    status |= check_floor("video peak RSS MB", video_rss, FLOOR_RSS_MB, at_most=True)
    status |= check_floor("folder images/s (100 photos, 2 cores)", images_per_s, FLOOR_IMAGES_PER_S)
    return status


if __name__ == "__main__":
    sys.exit(run(main))
