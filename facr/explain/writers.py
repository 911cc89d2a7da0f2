"""What ``facr explain`` writes: the rows of its table (py-feat / OpenFace column names), each face's
JSON and line, the annotated pictures and video, and the timeline of a video's AUs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from facr import au as au_vocab
from facr.au import ACTIVE
from facr.errors import FacrError
from facr.frontends import FaceReading

if TYPE_CHECKING:
    from facr.explain.run import FaceModel, FaceResult


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
