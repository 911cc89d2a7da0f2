"""``facr explain INPUT``: every face of a photo, a folder of photos, a video, a webcam or an AU table,
read by a model, explained through the one do() and checked against G.

Per face (one row; per frame for a video, with a face id that follows the face across frames):

* z over the model's AUs (the columns ``AU01`` …, as py-feat names them; AUs the input cannot code
  are left out of the table and named in a note: the model reads them as absent, z = 0);
* the class probabilities (one column per class, py-feat's ``anger`` … ``neutral``), the stated
  emotion ĉ (the argmax) and the AUs invoked for it (the top-|Pa(ĉ)| by |Δ_kĉ|, as the audit names
  them: :func:`facr.audit.metrics.invoked_aus`);
* Δ_kĉ = ŷ_ĉ − ŷ_ĉ^{do(z_k = 0)} per AU (``delta_AU01`` …), every do() in one batched head call
  (:func:`facr.causal.intervention_effects`);
* the check against G (:func:`facr.audit.metrics.pair_hits`, the chat's per-face check): how many
  parents k ∈ Pa(ĉ) move ĉ in their edge's sign by more than ε (``sens_hits`` of ``sens_pairs``)
  and how many non-parents stay within ε (``inv_hits`` of ``inv_pairs``);
* with a verbalizer, its rationale (the plan: the invoked AUs the face shows, ĉ and p(ĉ)).

The model (:func:`load_model`) is the shipped real-face AU head on MediaPipe's front end by default;
``--model`` takes an AU head (``facr train head``) or a reasoner checkpoint trained on images, whose
encoder then reads each face cropped from MediaPipe's box as the chat crops faces.

Layout of the table: ``input, frame, timestamp, face_id`` (OpenFace's ``frame``/``face_id``/``timestamp``;
frames count from 0 as in py-feat), py-feat's ``FaceRectX, FaceRectY, FaceRectWidth, FaceRectHeight,
FaceScore, Pitch, Roll, Yaw``, the AUs, the probabilities, ``emotion, invoked_aus`` (``;``-separated),
the Δs, the check, ``rationale`` (with a verbalizer) and the 68 iBUG landmarks ``x_0 … y_67``. The
AU columns beside ``FaceRectX`` make it a py-feat table to :func:`facr.frontends.tables.read_au_table`
too, so a results.csv can be explained again (``--format pyfeat``; the AU values are z, read as z).
"""

from __future__ import annotations

import contextlib
import csv
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from facr import au as au_vocab
from facr.au import ACTIVE
from facr.errors import FacrError
from facr.frontends import FaceReading

if TYPE_CHECKING:  # torch is imported where it runs: `facr --help` builds this command's parser without it
    import torch

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".gif")
TABLE_SUFFIXES = (".csv",)
CAMERA = 0  # cv2.VideoCapture's index of the webcam
TABLE_CHUNK = 1024  # table rows per batched head call
DEFAULT_EPSILON = 0.1  # ε of the check when the checkpoint does not record its own
TRACK_IOU = 0.3  # a face continues a track whose last box it overlaps this much ...
TRACK_CENTRE = 0.5  # ... or whose last centre lies within this share of its box's side
TRACK_PATIENCE = 30  # frames a track may miss before its id is retired
RESULTS, TIMELINE, ANNOTATED = "results.csv", "timeline.png", "annotated.mp4"
OUTPUT_KIND = "explain"


# ------------------------------------------------------------------------------ the model
@dataclass
class FaceModel:
    """What reads the faces: an AU head on a front end's z (``head``), or a reasoner whose encoder reads
    face crops (``reasoner``; its z-only head also reads a table's z). ``graph`` is G, ``epsilon`` the
    check's ε, ``signs`` s [K, C] of G in the model's orders."""

    name: str
    path: str | None
    aus: list[str]
    classes: list[str]
    graph: object
    epsilon: float
    head: torch.nn.Module | None = None
    reasoner: torch.nn.Module | None = None
    signs: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self):
        from facr.train import graph_signs

        self.signs = graph_signs(self.graph, self.aus, self.classes)

    @property
    def reads_pixels(self) -> bool:
        return self.reasoner is not None

    def latent(self, readings: Sequence[FaceReading], image: np.ndarray | None, source: str):
        """(z [N, K], coded [N, K], the z → logits function do() acts on) for ``readings``: the front
        end's z aligned to the model's AUs, or the encoder's z on the faces cropped from ``image``."""
        import torch

        from facr.frontends.head import align

        if self.head is not None:
            z, coded = align(readings, self.aus)
            return torch.from_numpy(z), coded, self.head.head
        if image is None:
            if not self.reasoner.z_only:
                raise FacrError(source, f"{self.path} has an agcm head: it reads pixels as well as z, so it cannot "
                                        "explain an AU table (use an mlp/linear reasoner or an AU head)")
            z, coded = align(readings, self.aus)
            return torch.from_numpy(z), coded, self.reasoner.latent_head()
        from facr.chat.face import square_crop
        from facr.data.torch_data import load_image

        size = int(self.reasoner.config.encoder.image_size)
        crops = [load_image(np.ascontiguousarray(square_crop(image, _xywh(r.box))), size) for r in readings]
        latent = self.reasoner.latent(torch.from_numpy(np.stack(crops)))
        return latent.z, np.ones((len(readings), len(self.aus)), dtype=bool), latent.head


def _xywh(box) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    return round(x0), round(y0), max(1, round(x1 - x0)), max(1, round(y1 - y0))


def _recorded_epsilon(path: Path) -> float | None:
    """The ε a head was trained with (its training.json), or None."""
    from facr.utils import loads_json

    try:
        value = loads_json((path / "training.json").read_text(encoding="utf-8"))["config"]["epsilon"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def load_model(path: str | None = None, graph: str | None = None) -> FaceModel:
    """The model ``--model`` names: None is the shipped real-face head; a folder ``facr train head``
    wrote is an AU head; a reasoner checkpoint or run folder is a reasoner (its encoder reads face
    crops). ``graph``: G to check against (a facr-graph file or built-in name; default: the model's)."""
    from facr.frontends.head import default_head_path, load_head
    from facr.graph import resolve_graph

    if path is None:
        folder = default_head_path()
        head, own = load_head(folder)
        name = "the shipped real-face head"
        model = FaceModel(name, str(folder), list(head.config.aus), list(head.config.classes), own,
                          _recorded_epsilon(folder) or DEFAULT_EPSILON, head=head)
    else:
        model = _load_checkpoint(path)
    return model if graph is None else replace(model, graph=resolve_graph(graph))


def _load_checkpoint(path: str) -> FaceModel:
    from facr.audit.auditors import reasoner_folder, training_epsilon
    from facr.frontends.head import load_head
    from facr.models.reasoner import load_reasoner, read_json_file

    p = Path(path)
    if (p / "config.json").is_file() and "frontend" in read_json_file(p / "config.json"):
        head, own = load_head(p)  # only an AU head's config names a front end
        return FaceModel(f"the AU head {path}", str(p), list(head.config.aus), list(head.config.classes), own,
                         _recorded_epsilon(p) or DEFAULT_EPSILON, head=head)
    folder = reasoner_folder(path)
    if folder is None:
        raise FacrError(path, "not a facr AU head (facr train head) or reasoner checkpoint (facr train reasoner)")
    reasoner, own = load_reasoner(folder)
    return FaceModel(f"the reasoner {path}", str(folder), list(reasoner.config.aus), list(reasoner.config.classes),
                     own, training_epsilon(folder) or DEFAULT_EPSILON, reasoner=reasoner)


def load_verbalizer_for(path: str | None, model: FaceModel):
    """The verbalizer at ``path`` (a checkpoint or run folder), on CPU, or None; one line when it was
    trained for other AUs than the model's (checked from its config, before its LM is loaded)."""
    if path is None:
        return None
    from facr.audit.rationale import verbalizer_folder
    from facr.config import from_dict
    from facr.models.reasoner import read_json_file
    from facr.verbalizer.model import VerbalizerConfig, load_verbalizer

    folder = verbalizer_folder(path)
    if folder is None:
        raise FacrError(path, "not a facr verbalizer checkpoint (facr train verbalizer)")
    config = from_dict(VerbalizerConfig, read_json_file(folder / "config.json"), str(folder / "config.json"))
    if list(config.aus) != model.aus:
        raise FacrError(path, f"the verbalizer speaks for the AUs {', '.join(config.aus)}, the model reads "
                              f"{', '.join(model.aus)}: it needs a verbalizer trained on this model")
    return load_verbalizer(folder, device="cpu")


# ------------------------------------------------------------------------------ reading faces
@dataclass
class FaceResult:
    """One face explained: z [K] over the model's AUs (``coded`` False where the input cannot see the
    AU), the probabilities [C], ĉ, the AUs invoked for it, Δ_kĉ [K], the check against G
    (``sens_hits, sens_pairs, inv_hits, inv_pairs``) and the rationale (with a verbalizer)."""

    reading: FaceReading
    z: np.ndarray
    coded: np.ndarray
    probabilities: np.ndarray
    emotion: str
    invoked: list[str]
    delta: np.ndarray
    check: dict[str, int]
    rationale: str | None = None
    timestamp: float | None = None


def explain_faces(model: FaceModel, readings: Sequence[FaceReading], image: np.ndarray | None = None,
                  verbalizer=None, source: str = "") -> list[FaceResult]:
    """Every face of ``readings`` through ``model``: ŷ and every do(z_k = 0) in one batched head call,
    ĉ, the invoked AUs and the check against G (the audit's own functions), and the rationale."""
    import torch

    from facr.audit.metrics import invoked_aus, pair_hits
    from facr.causal import intervention_effects

    if not readings:
        return []
    with torch.no_grad():
        z, coded, head = model.latent(readings, image, source)
        eff = intervention_effects(head, z.float())
    predicted = eff.logits.argmax(dim=1)
    probs = torch.softmax(eff.logits, dim=1).numpy()
    invoked = invoked_aus(eff, model.signs, predicted)
    hits = pair_hits(eff, model.signs, predicted, z, model.epsilon)
    delta = eff.for_class(predicted).numpy()
    zs = z.numpy()
    results = [FaceResult(r, zs[i], coded[i], probs[i], model.classes[int(predicted[i])],
                          [model.aus[k] for k in invoked[i]], delta[i], {k: int(v[i]) for k, v in hits.items()})
               for i, r in enumerate(readings)]
    if verbalizer is not None:
        for result, text in zip(results, _rationales(verbalizer, model, results)):
            result.rationale = text
    return results


def _rationales(verbalizer, model: FaceModel, results: list[FaceResult]) -> list[str]:
    """The verbalizer's rationale of each face, realising the plan the chat's explainer makes: the
    invoked AUs the face shows (largest effect first), ĉ and p(ĉ)."""
    import torch

    from facr.verbalizer.plan import RationalePlan

    plans = [RationalePlan([a for a in r.invoked if r.z[model.aus.index(a)] >= ACTIVE], r.emotion,
                           round(float(r.probabilities[model.classes.index(r.emotion)]), 2)) for r in results]
    z = torch.from_numpy(np.stack([r.z for r in results]))
    return verbalizer.generate(z, [r.emotion for r in results], plans=plans)


# ------------------------------------------------------------------------------ face ids across frames
def _overlap(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return iw * ih / max(union, 1e-9)


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
                iou = _overlap(r.box, box)
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


# ------------------------------------------------------------------------------ rows
RECT = ("FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight", "FaceScore", "Pitch", "Roll", "Yaw")
CHECK = ("sens_hits", "sens_pairs", "inv_hits", "inv_pairs")


def au_column(au: str) -> str:
    """py-feat's AU column name: ``AU1`` -> ``AU01``."""
    return f"AU{au_vocab.parse(au):02d}"


def columns(model: FaceModel, shown: Sequence[str], rationale: bool) -> list[str]:
    """The CSV header (module docstring): ``shown`` are the AUs the input codes."""
    return ["input", "frame", "timestamp", "face_id", *RECT, *(au_column(a) for a in shown), *model.classes,
            "emotion", "invoked_aus", *(f"delta_{au_column(a)}" for a in shown), *CHECK,
            *(["rationale"] if rationale else []), *(f"x_{k}" for k in range(68)), *(f"y_{k}" for k in range(68))]


def _num(value, digits: int = 4) -> str:
    return "" if value is None else f"{float(value):.{digits}f}".rstrip("0").rstrip(".")


def _landmarks68(reading: FaceReading) -> np.ndarray | None:
    """The 68 iBUG points of a face in pixels (MediaPipe's 478 mapped; a table's own 68), or None."""
    pts = reading.landmarks
    if pts is None:
        return None
    if pts.shape[0] == 478:
        from facr.frontends.mediapipe import to_ibug68

        return to_ibug68(pts)
    return pts[:, :2] if pts.shape[0] == 68 else None


def csv_row(result: FaceResult, model: FaceModel, shown: Sequence[str], rationale: bool) -> list[str]:
    """One face as cells in the order of :func:`columns`."""
    r = result.reading
    pose = r.extra.get("head_pose") if isinstance(r.extra.get("head_pose"), dict) else {}
    if r.box is not None:
        x0, y0, x1, y1 = r.box
        rect = [_num(x0, 1), _num(y0, 1), _num(x1 - x0, 1), _num(y1 - y0, 1)]
    else:
        rect = [""] * 4
    score = r.extra.get("detection_score") if isinstance(r.extra.get("detection_score"), float) else None
    idx = [model.aus.index(a) for a in shown]
    pts = _landmarks68(r)
    points = ([_num(v, 1) for v in pts[:, 0]] + [_num(v, 1) for v in pts[:, 1]]) if pts is not None else [""] * 136
    return [r.source, "" if r.frame is None else str(r.frame), _num(result.timestamp), str(r.face_id), *rect,
            _num(score), *(_num(pose.get(k)) for k in ("pitch", "roll", "yaw")),
            *(_num(result.z[k]) for k in idx), *(_num(p) for p in result.probabilities), result.emotion,
            ";".join(result.invoked), *(_num(result.delta[k]) for k in idx), *(str(result.check[k]) for k in CHECK),
            *([result.rationale or ""] if rationale else []), *points]


def face_json(result: FaceResult, model: FaceModel) -> dict:
    """One face as JSON: ``aus`` (z of the AUs the input codes), ``probabilities``, ``emotion``,
    ``invoked_aus``, ``delta`` (Δ_kĉ), ``check`` and where it is."""
    r = result.reading
    coded = [k for k, a in enumerate(model.aus) if result.coded[k]]
    out = {"input": r.source, "frame": r.frame, "face_id": r.face_id,
           "box": None if r.box is None else [round(float(v), 1) for v in r.box],
           "aus": {model.aus[k]: round(float(result.z[k]), 4) for k in coded},
           "probabilities": {c: round(float(p), 4) for c, p in zip(model.classes, result.probabilities)},
           "emotion": result.emotion, "invoked_aus": list(result.invoked),
           "delta": {model.aus[k]: round(float(result.delta[k]), 4) for k in coded},
           "check": {"graph": model.graph.name, "epsilon": model.epsilon, **result.check}}
    if result.timestamp is not None:
        out["timestamp"] = round(result.timestamp, 4)
    if result.rationale is not None:
        out["rationale"] = result.rationale
    return out


def face_line(result: FaceResult, model: FaceModel) -> str:
    """One face in one line of text."""
    r = result.reading
    where = f" frame {r.frame}" if r.frame is not None else ""
    present = [f"{a} {result.z[k]:.2f}" for k, a in enumerate(model.aus)
               if result.coded[k] and result.z[k] >= ACTIVE]
    c = result.check
    p = result.probabilities[model.classes.index(result.emotion)]
    line = (f"{r.source}{where} face {r.face_id}: {result.emotion} (p {p:.2f}); invoked "
            f"{', '.join(result.invoked) or 'none'}; present {', '.join(present) or 'none'}; G {model.graph.name}: "
            f"sensitivity {c['sens_hits']}/{c['sens_pairs']}, invariance {c['inv_hits']}/{c['inv_pairs']}")
    return line + (f"\n  rationale: {result.rationale}" if result.rationale is not None else "")


# ------------------------------------------------------------------------------ pictures
def annotate(rgb: np.ndarray, results: Sequence[FaceResult], model: FaceModel) -> np.ndarray:
    """A BGR copy of ``rgb`` with each face's box, id, ĉ, p(ĉ) and invoked AUs drawn on it."""
    import cv2

    out = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    scale = max(0.6, min(rgb.shape[:2]) / 600)
    for res in results:
        if res.reading.box is None:
            continue
        x0, y0, x1, y1 = (round(v) for v in res.reading.box)
        p = res.probabilities[model.classes.index(res.emotion)]
        cv2.rectangle(out, (x0, y0), (x1, y1), (60, 200, 60), max(1, round(2 * scale)))
        above, below = max(round(14 * scale), y0 - 6), min(rgb.shape[0] - 4, y1 + round(16 * scale))
        for text, y in ((f"{res.reading.face_id}: {res.emotion} {p:.2f}", above), (" ".join(res.invoked), below)):
            cv2.putText(out, text, (x0, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (60, 200, 60),
                        max(1, round(scale)), cv2.LINE_AA)
    return out


def draw_timeline(series: dict[int, list], model: FaceModel, shown: Sequence[str], path: Path, title: str) -> None:
    """AU z and class probabilities over time for the face seen in the most frames (PNG at ``path``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6), dpi=100)
    ax_au, ax_p = fig.subplots(2, 1, sharex=True)
    if series:
        face, rows = max(series.items(), key=lambda kv: (len(kv[1]), -kv[0]))
        t = np.array([row[0] for row in rows])
        z = np.stack([row[1] for row in rows])
        probs = np.stack([row[2] for row in rows])
        for a in shown:
            k = model.aus.index(a)
            if z[:, k].max() >= ACTIVE:  # the AUs that appear; the rest stay in results.csv
                ax_au.plot(t, z[:, k], label=a, linewidth=1.2)
        for j, c in enumerate(model.classes):
            ax_p.plot(t, probs[:, j], label=c, linewidth=1.2)
        stated = probs.argmax(axis=1)
        ax_p.scatter(t, np.full(len(t), 1.04), c=[f"C{j}" for j in stated], s=6, marker="s", clip_on=False)
        fig.suptitle(f"{title}: face {face} ({len(rows)} of {sum(map(len, series.values()))} face rows)", fontsize=10)
    else:
        fig.suptitle(f"{title}: no face in any frame", fontsize=10)
    ax_au.axhline(ACTIVE, color="black", linestyle="--", linewidth=0.8)
    ax_au.set_ylim(-0.02, 1.04)  # a z of exactly 0 or 1 stays visible
    ax_au.set_ylabel("z (AUs present at least once)")
    ax_p.set_ylim(0, 1.08)
    ax_p.set_ylabel("p(class); squares: stated")
    ax_p.set_xlabel("time (s)" if series and all(r[0] is not None for rows in series.values() for r in rows)
                    else "frame")
    for ax in (ax_au, ax_p):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


# ------------------------------------------------------------------------------ the run
@dataclass
class ExplainOptions:
    """What ``facr explain INPUT`` was asked (``input`` None with ``webcam``)."""

    input: str | None = None
    model: str | None = None
    verbalizer: str | None = None
    graph: str | None = None
    format: str | None = None
    out: str | None = None
    json: bool = False
    annotate: bool = False
    webcam: bool = False
    overwrite: bool = False
    progress: bool = True
    print_faces: bool = True

    def __post_init__(self):
        from facr.frontends.tables import FORMATS

        if (self.input is None) == (not self.webcam):
            raise FacrError("explain", "give one INPUT (an image, a folder, a video or an AU table) or --webcam")
        if self.format is not None and self.format not in FORMATS:
            raise FacrError("--format", f"unknown table format {self.format!r} (choose from {', '.join(FORMATS)})")
        if self.webcam and self.format is not None:
            raise FacrError("--format", "names an AU table's format; --webcam reads a camera")
        if self.annotate and (self.out is None or self.out_is_file):
            raise FacrError("--annotate", "draws into a folder: give --out DIR")

    @property
    def out_is_file(self) -> bool:
        return self.out is not None and Path(self.out).suffix.lower() == ".csv"


@dataclass
class Summary:
    """What one run read and wrote; ``faces`` holds every face's JSON when asked (``--json``)."""

    input: str
    kind: str
    model: FaceModel
    shown: list[str]
    not_coded: list[str]
    counts: Counts
    n_faces: int = 0
    faces: list[dict] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict:
        c = self.counts
        out = {"input": self.input, "kind": self.kind, "model": self.model.path, "graph": self.model.graph.name,
               "epsilon": self.model.epsilon, "aus": self.shown, "not_coded": self.not_coded,
               "n_faces": self.n_faces, "faces": self.faces, "written": self.written}
        if self.kind in ("folder", "image"):
            out.update(images=c.images, images_without_face=c.no_face, unreadable=c.unreadable)
        if self.kind in ("video", "webcam"):
            out.update(frames=c.frames, frames_with_face=c.frames_with_face, detector=c.detector,
                       frames_found_by_tiles_only=c.tiled_again)
        if self.kind == "table":
            out["skipped_rows"] = c.skipped_rows
        return out

    def notes(self) -> list[str]:
        """The lines that say what is not in the rows."""
        c, out = self.counts, []
        if self.kind == "folder":
            out.append(f"{self.n_faces} face(s) in {c.images} picture(s); {len(c.no_face)} picture(s) without a face"
                       + (f" ({', '.join(c.no_face[:5])}{', ...' if len(c.no_face) > 5 else ''})" if c.no_face else ""))
            if c.unreadable:
                out.append(f"{len(c.unreadable)} file(s) skipped, not pictures: " + "; ".join(c.unreadable[:3])
                           + ("; ..." if len(c.unreadable) > 3 else ""))
        if self.kind in ("video", "webcam"):
            out.append(f"{self.n_faces} face row(s) in {c.frames} frame(s), {c.frames - c.frames_with_face} frame(s) "
                       f"without a face" + (f"; detector: {c.detector}" if c.detector else "")
                       + (f", {c.tiled_again} frame(s) found by the tiles only" if c.tiled_again else ""))
            if c.expected_frames and c.frames < c.expected_frames:
                out.append(f"the video says {c.expected_frames} frames; {c.frames} decoded")
        if self.kind == "table":
            out.append(f"{self.n_faces} face row(s); {c.skipped_rows} row(s) without a face skipped")
        if self.not_coded:
            out.append(f"not coded by this input: {', '.join(self.not_coded)} (the model reads them as absent, z = 0)")
        return out


def explain(options: ExplainOptions, emit=print) -> Summary:
    """Run ``facr explain`` as ``options`` say: read, explain, write; ``emit`` receives each face's line
    (``print_faces``). Returns the :class:`Summary`."""
    from facr.frontends.mediapipe import MediaPipeFrontend
    from facr.frontends.tables import read_au_table
    from facr.outputs import output_dir
    from facr.utils import atomic_path, file_target

    path = Path(options.input) if options.input is not None else None
    kind = "webcam" if options.webcam else input_kind(path, options.format)
    if options.annotate and kind == "table":
        raise FacrError("--annotate", "an AU table has no pictures to draw on")
    if options.out is not None and path is not None and Path(options.out).resolve() == path.resolve():
        raise FacrError(options.out, "is the input itself: facr never writes over what it reads; choose another --out")
    if options.out_is_file:
        file_target(options.out)
    model = load_model(options.model, options.graph)
    verbalizer = load_verbalizer_for(options.verbalizer, model)
    counts = Counts()
    label = "webcam" if path is None else str(path)

    with contextlib.ExitStack() as stack:
        # the input first: a video that does not decode or a bad table is one line before anything is written
        if kind == "table":
            table = read_au_table(path, options.format, model.aus)
            shown = [a for a in model.aus if a in table.table_aus]
            batches = table_batches(table, counts)
        else:
            frontend = stack.enter_context(MediaPipeFrontend(aus=model.aus))
            shown = list(model.aus) if model.reads_pixels else [a for a in model.aus if a in frontend.seen]
            if kind in ("image", "folder"):
                batches = image_batches(path, frontend, counts, options.progress, single=kind == "image")
            else:
                cap = open_webcam() if kind == "webcam" else open_video(path)
                stack.callback(cap.release)
                batches = video_batches(cap, label, frontend, FaceTracker(), counts, options.progress)
        summary = Summary(label, kind, model, shown, [a for a in model.aus if a not in shown], counts)

        folder = None
        if options.out is not None and options.out_is_file:
            csv_path = stack.enter_context(atomic_path(options.out))
        elif options.out is not None:
            folder = stack.enter_context(output_dir(options.out, OUTPUT_KIND, overwrite=options.overwrite,
                                                    inputs=[options.input, options.model, options.verbalizer]))
            csv_path = folder / RESULTS
        else:
            csv_path = None
        writer = None
        if csv_path is not None:
            handle = stack.enter_context(csv_path.open("w", newline="", encoding="utf-8"))
            writer = csv.writer(handle)
            writer.writerow(columns(model, shown, verbalizer is not None))
        video_out = None
        series: dict[int, list] = {}

        start = time.perf_counter()
        try:
            for batch in batches:
                results = explain_faces(model, batch.readings, None if kind == "table" else batch.image, verbalizer,
                                        batch.source)
                for res in results:
                    res.timestamp = batch.timestamp
                    if writer is not None:
                        writer.writerow(csv_row(res, model, shown, verbalizer is not None))
                    if options.json:
                        summary.faces.append(face_json(res, model))
                    if options.print_faces:
                        emit(face_line(res, model))
                    if kind in ("video", "webcam"):
                        series.setdefault(res.reading.face_id, []).append(
                            (batch.timestamp if batch.timestamp is not None else batch.frame, res.z, res.probabilities))
                summary.n_faces += len(results)
                if options.annotate:
                    picture = annotate(batch.image, results, model)
                    if kind in ("video", "webcam"):
                        video_out = video_out or _video_writer(folder / ANNOTATED, batch.image, counts.fps)
                        video_out.write(picture)
                    else:
                        _write_picture(folder / "annotated" / Path(batch.source).name, picture)
        except KeyboardInterrupt:
            if kind != "webcam":
                raise  # Ctrl-C is how a webcam run ends (its rows so far are written); anything else stops
        summary.seconds = time.perf_counter() - start
        if video_out is not None:
            video_out.release()

        if kind in ("video", "webcam") and counts.frames == 0:
            raise FacrError(label, "cannot decode the video: OpenCV's FFmpeg reads no frame from it")
        if folder is not None and kind in ("video", "webcam"):
            draw_timeline(series, model, shown, folder / TIMELINE, Path(label).name)
        written = [] if options.out is None else [options.out] if folder is None else sorted(
            str(Path(options.out) / p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        summary.written = written
    return summary


def _video_writer(path: Path, first: np.ndarray, fps: float):
    """An mp4 writer the size of ``first`` at the input's frame rate (25 when it states none)."""
    import cv2

    h, w = first.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps if fps > 0 else 25.0, (w, h))
    if not writer.isOpened():
        raise FacrError(path, "OpenCV cannot write an mp4 video here")
    return writer


def _write_picture(path: Path, bgr: np.ndarray) -> None:
    """The annotated picture under its input's name (its format from the suffix, as cv2 writes it)."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), bgr):
        raise FacrError(path, "cannot write the annotated picture")


# ------------------------------------------------------------------------------ cli
DESCRIPTION = """\
Read every face of INPUT with a model, state its emotion, name the AUs that drive it (every do(z_k = 0)
through the one intervention) and check them against G, one row per face (per frame for a video, face
ids tracked across frames).

INPUT is a picture, a folder of pictures, a video file (what OpenCV's FFmpeg decodes) or an AU table
(OpenFace 2.2 / 3.0, py-feat or LibreFace CSV; --format, else recognised from its header). Without
--model: the shipped real-face head (AU -> emotion learned from the benchmark's SCM, not from people) on
MediaPipe's front end (blendshape proxies of 15 AUs, not calibrated FACS intensities).

`facr explain maps ...` (the first word `maps`) draws region maps instead: facr explain maps --help.
A file named maps is ./maps."""
EPILOG = """\
examples:
  facr explain photo.jpg
  facr explain photo.jpg --json
  facr explain photos/ --out results.csv
  facr explain clip.mp4 --out clip-explained/ --annotate      (results.csv, timeline.png, annotated.mp4)
  facr explain openface.csv --format openface --out results.csv
  facr explain photo.jpg --model runs/reasoner --verbalizer runs/verbalizer
  facr explain --webcam --out webcam/                           (Ctrl-C stops)"""


def add_arguments(p) -> None:
    """The flags of ``facr explain INPUT``."""
    from facr.frontends.tables import FORMATS

    p.add_argument("input", nargs="?", default=None, metavar="INPUT",
                   help="a picture, a folder of pictures, a video, or an AU table (.csv)")
    p.add_argument("--model", default=None, metavar="M",
                   help="an AU head (facr train head) or a reasoner checkpoint trained on images (its encoder reads "
                        "face crops); default: the shipped real-face head")
    p.add_argument("--verbalizer", default=None, metavar="V",
                   help="a verbalizer trained on the model's AUs: adds its rationale to each face")
    p.add_argument("--graph", default=None, help="G to check against: a facr-graph file or emfacs / pspi "
                                                 "(default: the model's own)")
    p.add_argument("--format", choices=FORMATS, default=None, help="INPUT is an AU table in this format")
    p.add_argument("--out", default=None, metavar="FILE.csv|DIR",
                   help="write the rows to FILE.csv, or DIR/results.csv (+ timeline.png for a video, + --annotate)")
    p.add_argument("--json", action="store_true", help="print one JSON object (faces: aus, probabilities, emotion, "
                                                       "invoked_aus, delta, check)")
    p.add_argument("--annotate", action="store_true",
                   help="with --out DIR: draw each face's box, emotion and invoked AUs (annotated.mp4 for a video, "
                        "annotated/<picture's name> for pictures)")
    p.add_argument("--webcam", action="store_true", help=f"read the camera (cv2.VideoCapture({CAMERA})) until Ctrl-C")
    p.add_argument("--overwrite", action="store_true", help="replace an --out folder facr explain wrote before")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (none when stderr is not a terminal)")


def run_command(args) -> int:
    """``facr explain INPUT``: the rows, then a summary (or one JSON object with ``--json``)."""
    from facr.utils import dumps_json

    options = ExplainOptions(input=args.input, model=args.model, verbalizer=args.verbalizer, graph=args.graph,
                             format=args.format, out=args.out, json=args.json, annotate=args.annotate,
                             webcam=args.webcam, overwrite=args.overwrite,
                             progress=not args.no_progress and sys.stderr.isatty(),
                             print_faces=not args.json and args.out is None)
    from tqdm.auto import tqdm

    summary = explain(options, emit=tqdm.write)  # each face's line above the bar, not through it
    if args.json:
        sys.stdout.write(dumps_json(summary.to_json()))
        return 0
    for line in summary.notes():
        print(line)
    print(f"model: {summary.model.name}, G: {summary.model.graph.name}"
          + (f"; wrote {', '.join(summary.written)}" if summary.written else ""))
    return 0
