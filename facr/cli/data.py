"""``facr data``: datasets — summarise a dataset folder, render the known-structure synthetic benchmark,
preview it, and make your own photos a dataset the audits read."""

from __future__ import annotations

import sys

from facr.cli.base import (
    Command,
    Group,
    add_json,
    add_out_file,
    check_flag,
    example,
    load_labels,
    out_file,
    print_json,
)
from facr.errors import FacrError
from facr.flags import add_fields, flag_of, given

# the SynthConfig fields `facr data synth` sets (their flags, help and defaults are the dataclass's)
SYNTH_FIELDS = ("n", "seed", "size", "style", "renderer", "shortcut", "shortcut_target", "subjects", "contempt",
                "pain")


def cmd_data_inspect(args) -> int:
    from facr.data.summary import format_summary, summarize

    summary = summarize(load_labels(args.root, args.format, strict=args.strict, verify=args.verify),
                        verified=args.verify)
    if args.json:
        print_json(summary)
    else:
        print(format_summary(summary))
    if args.verify and summary["n_errors"]:
        # --verify is a check: a dataset with skipped rows fails it (exit 1), as diff --exit-code does
        n, bad = summary["n_errors"], summary["image_errors"]["count"]
        print(f"facr: {summary['root']}: {n} row{'s' * (n != 1)} skipped, {bad} for the image (missing, outside the "
              f"data root or not decodable)", file=sys.stderr)
        return 1
    return 0


def _emotion_prior(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    prior: dict[str, float] = {}
    for part in text.split(","):
        name, sep, weight = part.partition("=")
        try:
            if not sep:
                raise ValueError
            prior[name.strip()] = float(weight)
        except ValueError:
            raise FacrError("--emotion-prior", f"expected name=weight[,name=weight...], got {part!r}") from None
    return prior


MAX_SYNTH_WORKERS = 256  # rendering processes; more than the machine's cores only costs memory


def cmd_data_synth(args) -> int:
    from facr.data.synth import SynthConfig, write_synth

    try:
        cfg = SynthConfig(**given(args, SynthConfig, SYNTH_FIELDS), emotion_prior=_emotion_prior(args.emotion_prior))
    except ValueError as exc:  # "size must be ..." names a field: report it as the flag that set it
        field, _, rest = str(exc).partition(" ")
        flags = {name: flag_of(SynthConfig, name) for name in (*SYNTH_FIELDS, "emotion_prior")}
        if field in flags and rest:
            raise FacrError(flags[field], rest) from None
        raise FacrError("facr data synth", str(exc)) from None
    check_flag("--workers", args.workers, 1, MAX_SYNTH_WORKERS)
    summary = write_synth(args.out, cfg, overwrite=args.overwrite, workers=args.workers,
                          progress=not args.json and sys.stderr.isatty())
    if args.json:
        print_json(summary)
    else:
        sp = summary["splits"]
        print(f"wrote {summary['out']}: {summary['n']} images {cfg.size}x{cfg.size} style {cfg.style} "
              f"renderer {cfg.renderer} "
              f"(train {sp['train']}, val {sp['val']}, test {sp['test']}; {cfg.subjects} subjects), "
              f"true graph {summary['graph']['class_edges']} class edges + {summary['graph']['au_edges']} AU edges, "
              f"{summary['images_per_s']:.0f} images/s")
    return 0


def cmd_data_preview(args) -> int:
    from facr.data.synth import preview_grid

    out_file(args, args.root)
    try:
        out = preview_grid(args.root, args.out, n=args.n, split=args.split, columns=args.columns, seed=args.seed)
    except ValueError as exc:
        raise FacrError(args.root, str(exc)) from None
    print(f"wrote {out}")
    return 0


def cmd_data_faces(args) -> int:
    from facr.data.photos import parse_photo, write_photo_faces

    photos = [parse_photo(a, args.emotion) for a in args.photos]
    summary = write_photo_faces(photos, args.out, overwrite=args.overwrite)
    if args.json:
        print_json(summary)
        return 0
    print(f"wrote {summary['out']}: {summary['n']} face(s) in AffectNet's layout (audit or train on it with "
          f"--format affectnet --split all)")
    for f in summary["faces"]:
        x, y, w, h = f["box_in_photo"]
        more = f"; {f['faces_found'] - 1} more face(s) ignored" if f["faces_found"] > 1 else ""
        print(f"  {f['photo']}: {f['emotion']}, face at x={x:.0f}, y={y:.0f}, {w:.0f}x{h:.0f}{more}")
    return 0


def _faces_arguments(p) -> None:
    p.add_argument("photos", nargs="+", metavar="PHOTO[=EMOTION]",
                   help="photos, each with its emotion (neutral, happiness, sadness, surprise, fear, disgust, anger, "
                        "contempt) or --emotion for all")
    p.add_argument("--out", required=True, help="output folder (missing or empty; one facr wrote with --overwrite)")
    p.add_argument("--emotion", default=None, help="the emotion of every PHOTO given without one")
    p.add_argument("--overwrite", action="store_true", help="replace a folder facr data faces wrote before")
    add_json(p, "print the summary as one JSON object")


def _inspect_arguments(p) -> None:
    from facr.data.formats import FORMATS

    p.add_argument("root", help="the dataset folder")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="dataset format (default: guessed from the folder's layout)")
    p.add_argument("--strict", action="store_true", help="stop at the first malformed row instead of skipping it")
    p.add_argument("--verify", action="store_true",
                   help="decode every image (bounded) and list those that do not; exit 1 when any row was skipped")
    add_json(p)


def _synth_arguments(p) -> None:
    from facr.data.synth import SynthConfig

    p.add_argument("--out", required=True,
                   help="output folder (missing or empty; an earlier synth folder with --overwrite)")
    add_fields(p, SynthConfig, SYNTH_FIELDS)
    p.add_argument("--emotion-prior", default=None, metavar="NAME=W,...",
                   help="class weights, e.g. neutral=1 for a UNBC-like pain set (default uniform)")
    p.add_argument("--workers", type=int, default=None, help="rendering processes (default: 2 for 1000+ images)")
    p.add_argument("--overwrite", action="store_true", help="replace a synth folder facr wrote into OUT before")
    add_json(p, "print the summary as one JSON object")


def _preview_arguments(p) -> None:
    p.add_argument("root", help="a folder written by facr data synth")
    add_out_file(p, "the PNG to write")
    p.add_argument("--n", type=int, default=32, help="number of samples (default 32)")
    p.add_argument("--split", choices=("train", "val", "test"), default=None, help="take samples from one split")
    p.add_argument("--columns", type=int, default=8, help="grid columns (default 8)")
    p.add_argument("--seed", type=int, default=0, help="which samples (default 0)")


GROUP = Group("data", "datasets: the synthetic benchmark and loaders for the real datasets", commands=(
    Command("inspect", "summarise a dataset folder in its released layout (records, subjects, labels, errors)",
            _inspect_arguments, cmd_data_inspect,
            description="Load a dataset in its released layout and summarise it: records, subjects, emotions, "
                        "AU prevalence, PSPI, and the malformed rows that were skipped.",
            epilog=example("facr data inspect --format unbc /data/UNBC-McMaster",
                           "facr data inspect --format affwild2 /data/Aff-Wild2 --json",
                           "facr data inspect my-synth-data/        (a facr synth dataset folder: no --format needed)",
                           "facr data inspect --verify /data/AffectNet   (decode every image; exit 1 if a row is "
                           "skipped)")),
    Command("synth", "render the known-structure synthetic face benchmark (images, labels, true graph)",
            _synth_arguments, cmd_data_synth,
            description="Render the synthetic face benchmark: faces whose AUs are drawn at their anatomical places, "
                        "generated by a structural causal model whose graph is written to OUT/graph.json. "
                        "OUT is a Hugging Face DatasetDict (datasets.load_from_disk) with train/val/test "
                        "(subject-disjoint) and config.json. Same seed, same dataset.",
            epilog=example("facr data synth --out data/synth --n 5000 --seed 0",
                           "facr data synth --out data/synth-shortcut --n 5000 --shortcut 0.9   (background hue "
                           "tracks the class in train/val only)",
                           "facr data synth --out data/synth-b --n 2000 --style b                (the second domain)",
                           "facr data synth --out data/pain --n 3000 --emotion-prior neutral=1 --shortcut 0.8 "
                           "--shortcut-target pain")),
    Command("faces", "make photos a dataset the audits read: MediaPipe's face box and 68 landmarks, your labels",
            _faces_arguments, cmd_data_faces,
            description="Read each photo through the MediaPipe front end (its largest face: box and 478 landmarks "
                        "mapped to the 68-point layout) and write OUT in AffectNet's released layout: the face "
                        "cropped square as the chat crops a face for a reasoner (OpenCV's Haar box), its box and "
                        "landmarks in the crop, and the emotion you give. facr audit --format affectnet --split all "
                        "then reads it, and --pixel-cf occludes each AU's landmark region on the real face.",
            epilog=example("facr data faces face.jpg=happiness other.png=neutral --out real",
                           "facr audit --model runs/synth/grounded --data real --format affectnet --split all "
                           "--pixel-cf --json",
                           "facr emola generate --model hf-vlm --vlm /models/llava-1.5-7b-hf --data real --format "
                           "affectnet --split all --pixel-cf --out vlm.jsonl")),
    Command("preview", "save a grid of captioned samples of a synth dataset as a PNG", _preview_arguments,
            cmd_data_preview,
            description="Save a grid of samples of a facr synth dataset, each captioned with its emotion, PSPI and "
                        "active AUs, to look at what a model will see.",
            epilog=example("facr data preview data/synth --out grid.png --n 32")),
))
