"""What ``facr explain`` reads: pictures, folders, videos, a webcam or an AU table, as batches of
faces (:class:`Batch`), with face ids that follow a face across a video's frames (:class:`FaceTracker`)
and the counts the summary reports (:class:`Counts`)."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from facr.errors import FacrError
from facr.frontends import FaceReading
from facr.utils import box_overlap

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".gif")
TABLE_SUFFIXES = (".csv",)
CAMERA = 0  # cv2.VideoCapture's index of the webcam
TABLE_CHUNK = 1024  # table rows per batched head call
TRACK_IOU = 0.3  # a face continues a track whose last box it overlaps this much ...
TRACK_CENTRE = 0.5  # ... or whose last centre lies within this share of its box's side
TRACK_PATIENCE = 30  # frames a track may miss before its id is retired


# ------------------------------------------------------------------------------ face ids across frames
class FaceTracker:
    """Face ids that follow faces across a video's frames. Each face continues the track whose last box
    it overlaps most (IoU ≥ :data:`TRACK_IOU`) or, failing that, whose last centre is nearest within
    :data:`TRACK_CENTRE` of the box's side (a fast move); pairs are taken best first, one face per
    track. A face with no track starts one (the next free id); a track unseen for
    :data:`TRACK_PATIENCE` frames is retired."""

    def __init__(self):
        self.tracks: dict[int, tuple[tuple[float, ...], int]] = {}  # id -> (last box, last frame)
        self.next_id = 0

    def assign(self, readings: Sequence[FaceReading], frame: int) -> None:
        """Set ``face_id`` of every reading of ``frame`` (in place)."""
        self.tracks = {k: v for k, v in self.tracks.items() if frame - v[1] <= TRACK_PATIENCE}
        pairs = []
        for i, r in enumerate(readings):
            side = max(r.box[2] - r.box[0], r.box[3] - r.box[1], 1e-9)
            for t, (box, _) in self.tracks.items():
                iou = box_overlap(r.box, box)[0]
                dist = math.hypot((r.box[0] + r.box[2] - box[0] - box[2]) / 2,
                                  (r.box[1] + r.box[3] - box[1] - box[3]) / 2) / side
                if iou >= TRACK_IOU or dist <= TRACK_CENTRE:
                    pairs.append((-iou, dist, i, t))
        taken_faces, taken_tracks = set(), set()
        for _, _, i, t in sorted(pairs):
            if i not in taken_faces and t not in taken_tracks:
                readings[i].face_id = t
                taken_faces.add(i)
                taken_tracks.add(t)
        for i, r in enumerate(readings):
            if i not in taken_faces:
                r.face_id = self.next_id
                self.next_id += 1
            self.tracks[r.face_id] = (tuple(r.box), frame)


# ------------------------------------------------------------------------------ inputs
@dataclass
class Batch:
    """The faces of one picture, one video frame, or one chunk of a table's rows."""

    source: str
    readings: list[FaceReading]
    image: np.ndarray | None = None  # RGB; None for a table
    frame: int | None = None
    timestamp: float | None = None


@dataclass
class Counts:
    """What an input held besides its faces (the summary's notes)."""

    images: int = 0
    no_face: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    frames: int = 0
    frames_with_face: int = 0
    expected_frames: int | None = None
    skipped_rows: int = 0
    detector: str = ""
    tiled_again: int = 0  # frames whose face only the tiles found
    fps: float = 0.0


def input_kind(path: Path, fmt: str | None) -> str:
    """image, folder, video or table: ``--format`` says table, else the suffix, else what the file decodes as."""
    if not path.exists():
        raise FacrError(path, "no such file or folder")
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if fmt is not None or suffix in TABLE_SUFFIXES:
        return "table"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    from facr.data.images import bounded_pil

    Image = bounded_pil()
    with contextlib.suppress(OSError, ValueError, Image.DecompressionBombError), Image.open(path):
        return "image"  # PIL knows it (its errors above only mean: not a picture PIL reads)
    cap = _capture(str(path))
    ok = cap.isOpened() and cap.read()[0]
    cap.release()
    if ok:
        return "video"
    raise FacrError(path, "not an image, a video or an AU table facr can read (images: " + ", ".join(IMAGE_SUFFIXES)
                    + "; video: what OpenCV's FFmpeg decodes; tables: .csv, or pass --format)")


def _capture(source):
    """cv2.VideoCapture on a file or a camera index, with OpenCV's and FFmpeg's own lines on stderr
    silenced ("moov atom not found", "can't open camera by index"): facr says one line instead."""
    import cv2

    from facr.frontends.mediapipe import (
        _quiet_stderr,  # the one fd-2 silencer (FFmpeg writes to fd 2 itself)
    )

    before = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        with _quiet_stderr():
            return cv2.VideoCapture(source)
    finally:
        cv2.utils.logging.setLogLevel(before)


def _bar(iterable=None, **kwargs):
    from tqdm.auto import tqdm

    return tqdm(iterable, dynamic_ncols=True, leave=False, **kwargs)


def image_batches(path: Path, frontend, counts: Counts, progress: bool, single: bool) -> Iterator[Batch]:
    """The faces of one picture (``single``: no face is an error) or of every picture in a folder
    (name order; pictures without a face and files that do not decode are counted, not rows)."""
    from facr.chat.face import FaceError, read_image

    if single:
        files = [path]
    else:
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FacrError(path, f"no pictures ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    for f in _bar(files, desc="explain", unit="image", disable=not progress or single):
        label = str(f)
        try:
            rgb = read_image(f)
        except FaceError as exc:
            if single:
                raise
            counts.unreadable.append(f.name + f" ({exc.message})")
            continue
        counts.images += 1
        readings = frontend.read(rgb, source=label)
        if not readings:
            if single:
                raise FacrError(f, f"no face found ({rgb.shape[1]}x{rgb.shape[0]} picture; MediaPipe's face detector "
                                   "on the whole picture and on tiles)")
            counts.no_face.append(f.name)
        yield Batch(label, readings, rgb)


def video_batches(cap, label: str, frontend, tracker: FaceTracker, counts: Counts, progress: bool) -> Iterator[Batch]:
    """The faces of every frame ``cap`` decodes, face ids tracked. Frames are searched whole (fast), or whole
    and in tiles when the first frame with a face shows more faces that way (a group, small faces); a frame
    searched whole that shows no face is searched in tiles too (BlazeFace misses a small face now and then)."""
    import cv2

    fps = counts.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    counts.expected_frames = total if total > 0 else None
    tiles = None  # decided on the first frame with a face
    frontend.tiles = True
    with _bar(total=counts.expected_frames, desc="explain", unit="frame", disable=not progress) as bar:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            frame = counts.frames
            counts.frames += 1
            readings = frontend.read(rgb, source=label, frame=frame)
            if tiles is None and readings:
                frontend.tiles = False
                tiles = len(frontend.read(rgb, source=label, frame=frame)) < len(readings)
                frontend.tiles = tiles
                counts.detector = "whole frame and tiles" if tiles else "whole frame (tiles where it finds none)"
            elif tiles is False and not readings:
                frontend.tiles = True
                readings = frontend.read(rgb, source=label, frame=frame)
                frontend.tiles = False
                counts.tiled_again += bool(readings)
            if readings:
                counts.frames_with_face += 1
                tracker.assign(readings, frame)
            bar.update()
            yield Batch(label, readings, rgb, frame, frame / fps if fps > 0 else None)


def open_video(path: Path):
    """An opened cv2.VideoCapture on ``path``, or one line saying it does not decode."""
    cap = _capture(str(path))
    if not cap.isOpened():
        raise FacrError(path, "cannot decode the video (OpenCV's FFmpeg cannot open it)")
    return cap


def open_webcam():
    """cv2.VideoCapture(:data:`CAMERA`), or one line when there is no camera."""
    cap = _capture(CAMERA)
    if not cap.isOpened():
        raise FacrError("--webcam", f"no camera: cv2.VideoCapture({CAMERA}) cannot open one")
    return cap


def table_batches(table, counts: Counts) -> Iterator[Batch]:
    counts.skipped_rows = table.skipped
    for start in range(0, len(table), TABLE_CHUNK):
        yield Batch(table.source, list(table[start:start + TABLE_CHUNK]))
