"""``facr frontend``: the real-face front end (MediaPipe blendshapes → AUs) and its calibration."""

from __future__ import annotations

from facr.cli.base import (
    Command,
    Group,
    add_json,
    add_no_progress,
    add_out_file,
    check_flag,
    example,
    load_labels,
    out_file,
    print_json,
)
from facr.errors import FacrError


def cmd_frontend_calibrate(args) -> int:
    from facr.frontends.mediapipe import MODEL_SHA256, MediaPipeFrontend, calibrate, read_labelled
    check_flag("--limit", args.limit, 1, 10**9)
    check_flag("--min-each", args.min_each, 1, 10**6)
    out = out_file(args, args.data)  # checked before the work, not after
    result = load_labels(args.data, args.format, strict=False)
    records = [r for r in result.records if any(v is not None for v in r.au_presence.values())
               and (args.split == "all" or r.split == args.split)][:args.limit]
    if not records:
        raise FacrError(args.data, f"no record with AU labels in split {args.split!r} ({result.format})")
    with MediaPipeFrontend(detector=args.detector) as frontend:
        read = read_labelled(records, frontend, root=args.data, progress=not args.no_progress)
    if not len(read.scores):
        raise FacrError(args.data, f"MediaPipe found no face in any of its {len(records)} labelled images")
    info = {"name": f"fitted on {args.data} ({result.format}, split {args.split})", "data": str(args.data),
            "format": result.format, "split": args.split, "faces": len(read.scores), "no_face": read.no_face,
            "unreadable": read.unreadable, "detector": args.detector, "model_sha256": MODEL_SHA256}
    fitted, report = calibrate(read.scores, read.labels, min_each=args.min_each, info=info)
    fitted.info["aus"] = report
    fitted.save(out)
    if args.json:
        print_json({"out": str(out), **fitted.info})
        return 0
    n_fit = sum(v == "fit" for v in fitted.source.values())
    print(f"wrote {out}: {n_fit} AUs fitted on {len(read.scores)} faces of {args.data} ({result.format}); "
          f"{read.no_face} without a face and {read.unreadable} unreadable skipped")
    for a, line in report.items():
        print(f"  {a:<5} {line}")
    return 0


def _calibrate_arguments(p) -> None:
    from facr.data.formats import FORMATS

    p.add_argument("--data", required=True, help="an AU-labelled dataset folder (any facr loader)")
    p.add_argument("--format", choices=FORMATS, default=None, help="its format (default: recognised from the layout)")
    add_out_file(p, "the JSON file to write")
    p.add_argument("--split", choices=("all", "train", "val", "test"), default="all",
                   help="which records (default all)")
    p.add_argument("--limit", type=int, default=None, help="at most this many labelled records")
    p.add_argument("--min-each", type=int, default=3,
                   help="fit an AU only with at least this many present and this many absent faces (default 3)")
    p.add_argument("--detector", choices=("mediapipe", "haar"), default="mediapipe",
                   help="face detector (default mediapipe)")
    add_json(p)
    add_no_progress(p)


GROUP = Group("frontend", "the real-face front end (MediaPipe blendshapes -> AUs)", commands=(
    Command("calibrate", "fit the blendshape -> AU map on AU-labelled faces (a JSON file for --mapping)",
            _calibrate_arguments, cmd_frontend_calibrate,
            description="Read every AU-labelled face of a dataset folder with MediaPipe's FaceLandmarker and fit "
                        "one logistic regression per AU on all 52 blendshape scores (classes balanced, so z = 0.5 is "
                        "the decision boundary). AUs with too few present or absent faces keep the hand table's row. "
                        "Load the result with MediaPipeFrontend(mapping=FILE).",
            epilog=example("facr frontend calibrate --data data/DISFA --format disfa --out maps/disfa.json",
                           "facr frontend calibrate --data data/synth --split train --limit 500 --out "
                           "maps/synth.json")),
))
