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
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from facr.errors import FacrError
from facr.explain.sources import (
    CAMERA,
    Counts,
    FaceTracker,
    image_batches,
    input_kind,
    open_video,
    open_webcam,
    table_batches,
    video_batches,
)
from facr.explain.writers import (
    _video_writer,
    _write_picture,
    annotate,
    columns,
    csv_row,
    draw_timeline,
    face_json,
    face_line,
)
from facr.frontends import FaceReading

if TYPE_CHECKING:  # torch is imported where it runs: `facr --help` builds this command's parser without it
    import torch

DEFAULT_EPSILON = 0.1  # ε of the check when the checkpoint does not record its own
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
        from facr.causal import graph_signs

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
    invoked AUs the face shows (largest effect first; those with Δ < 0 against ĉ), ĉ and p(ĉ)."""
    import torch

    from facr.verbalizer.plan import RationalePlan

    plans = []
    for r in results:
        plans.append(RationalePlan.for_face(r.invoked, dict(zip(model.aus, r.z.tolist())),
                                            dict(zip(model.aus, r.delta.tolist())), r.emotion,
                                            round(float(r.probabilities[model.classes.index(r.emotion)]), 2)))
    z = torch.from_numpy(np.stack([r.z for r in results]))
    return verbalizer.generate(z, [r.emotion for r in results], plans=plans)


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
            listed = f" ({', '.join(c.no_face[:5])}{', ...' if len(c.no_face) > 5 else ''})" if c.no_face else ""
            out.append(f"{self.n_faces} face(s) in {c.images} picture(s); {len(c.no_face)} picture(s) without a face"
                       + listed)
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
    from facr.outputs import check_target, output_dir, output_file
    from facr.utils import atomic_path

    path = Path(options.input) if options.input is not None else None
    kind = "webcam" if options.webcam else input_kind(path, options.format)
    if options.annotate and kind == "table":
        raise FacrError("--annotate", "an AU table has no pictures to draw on")
    inputs = [options.input, options.model, options.verbalizer]
    if options.out_is_file:  # a CSV: not an input, and an existing file only with --overwrite
        output_file(options.out, overwrite=options.overwrite, inputs=inputs)
    elif options.out is not None:  # a folder: checked now, before the work, and again when it is written
        check_target(options.out, OUTPUT_KIND, overwrite=options.overwrite, inputs=inputs)
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
                                                    inputs=inputs))
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
                        when = batch.timestamp if batch.timestamp is not None else batch.frame
                        series.setdefault(res.reading.face_id, []).append((when, res.z, res.probabilities))
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
    p.add_argument("--overwrite", action="store_true",
                   help="replace an --out folder facr explain wrote before, or the --out CSV file")
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
