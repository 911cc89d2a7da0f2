"""``facr train``: Stage 1 (the faithful reasoner), Stage 2 (the gated verbalizer), an emotion head on AU
vectors, and the table of several runs' held-out metrics."""

from __future__ import annotations

import json
import os
from pathlib import Path

from facr.cli.base import Command, Group, add_json, add_no_progress, example, fmt3, print_json
from facr.errors import FacrError
from facr.flags import add_fields, given
from facr.utils import loads_json

# the HeadTrainConfig fields `facr train head` sets (their flags, help and defaults are the dataclass's)
HEAD_FIELDS = ("data", "format", "label_column", "frontend", "graph", "head", "epochs", "n", "noise", "seed", "out")


def cmd_train_reasoner(args) -> int:
    from facr.train_args import run_from_args

    result = run_from_args(args)
    m = result.metrics
    if args.json:
        print_json(m)
    elif m:
        print(f"wrote {result.out}/model: {m.get('split')} accuracy {fmt3(m.get('accuracy'))}, macro-F1 "
              f"{fmt3(m.get('macro_f1'))}, AUC {fmt3(m.get('auc'))}, CF sensitivity {fmt3(m.get('cf_sensitivity'))}, "
              f"CF invariance {fmt3(m.get('cf_invariance'))}, graph-causal agreement "
              f"{fmt3(m.get('graph_causal_agreement'))}")
    return 0


def cmd_train_verbalizer(args) -> int:
    from facr.verbalizer.train import run_from_args

    metrics = run_from_args(args)
    if args.json:
        print_json(metrics)
    elif metrics:
        print(f"wrote the verbalizer: {metrics['steps']} steps on {metrics['backbone']}, loss "
              f"{metrics['loss_first']:.3f} -> {metrics['loss_last']:.3f}, exact named set on 8 training faces "
              f"{metrics['exact_named_set']:.2f}")
        examples = json.loads((Path(metrics["out"]) / "examples.json").read_text(encoding="utf-8"))
        for e in examples[:4]:
            print(f"  {e['emotion']:<10} target {', '.join(e['target_aus']) or '-':<22} \"{e['rationale']}\"")
    return 0


def cmd_train_head(args) -> int:
    from facr.config import from_dict
    from facr.frontends.head import HeadTrainConfig, train_head

    settings = given(args, HeadTrainConfig, HEAD_FIELDS)
    if args.aus:
        settings["aus"] = [a.strip() for a in args.aus.split(",") if a.strip()]
    cfg = from_dict(HeadTrainConfig, settings, "facr train head")
    run = train_head(cfg, progress=not args.no_progress, overwrite=args.overwrite)
    m = run.metrics
    if args.json:
        print_json({"out": str(run.out), "dropped_aus": run.dropped_aus, **m})
        return 0
    print(f"wrote {run.out}: an AU head over {len(m.get('recall', {}))} classes; held-out {m['n_samples']} faces: "
          f"accuracy {fmt3(m['accuracy'])}, macro-F1 {fmt3(m['macro_f1'])}, CF sensitivity "
          f"{fmt3(m['cf_sensitivity'])} (present parents {fmt3(m['cf_sensitivity_active'])}), CF invariance "
          f"{fmt3(m['cf_invariance'])}")
    if run.dropped_aus:
        print(f"left out {', '.join(run.dropped_aus)}: the front end codes them, the benchmark's SCM does not draw "
              "them")
    return 0


def cmd_train_table(args) -> int:
    rows = []
    # name each run by what tells it apart: its path below the runs' common folder
    common = os.path.commonpath([os.path.abspath(r) for r in args.runs]) if len(args.runs) > 1 else None
    for run in args.runs:
        path = Path(run) / "metrics.json"
        try:
            m = loads_json(path.read_text(encoding="utf-8"))
        except OSError:
            raise FacrError(path, "no metrics.json (is this a finished run folder?)") from None
        except ValueError as exc:
            raise FacrError(path, f"not JSON: {exc}") from None
        if not isinstance(m, dict):
            raise FacrError(path, "not a metrics object")
        name = os.path.relpath(os.path.abspath(run), common) if common else os.path.basename(os.path.normpath(run))
        rows.append({"run": name if name != "." else os.path.basename(os.path.normpath(run)), **m})
    if args.json:
        print_json({"runs": rows})
        return 0
    cols = [("run", "run"), ("graph", "graph"), ("faith", "faith"), ("accuracy", "accuracy"),
            ("macro_f1", "macro-F1"), ("au_f1", "AU F1"), ("cf_sensitivity", "CF sensitivity"),
            ("cf_invariance", "CF invariance"), ("graph_causal_agreement", "agreement (own G)"),
            ("true_graph_agreement", "agreement (true G)")]
    split = {r.get("split") for r in rows}
    print(f"held-out split: {', '.join(sorted(str(s) for s in split))}")
    print("| " + " | ".join(h for _, h in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(_cell(r.get(k)) for k, _ in cols) + " |")
    return 0


def _cell(v) -> str:
    """A value in the runs table: floats to three decimals, anything else as it is."""
    return fmt3(v) if isinstance(v, float) or v is None else str(v)


def _reasoner_arguments(p) -> None:
    from facr.train_args import add_train_arguments

    add_train_arguments(p)
    add_json(p, "print the final metrics as one JSON object")


def _verbalizer_arguments(p) -> None:
    from facr.verbalizer.train import add_verbalizer_arguments

    add_verbalizer_arguments(p)
    add_json(p, "print the final metrics as one JSON object")


def _head_arguments(p) -> None:
    from facr.frontends.head import HeadTrainConfig
    from facr.frontends.tables import FORMATS

    add_fields(p, HeadTrainConfig, HEAD_FIELDS, extra={"format": {"choices": FORMATS}, "out": {"required": True}})
    p.add_argument("--aus", default=None, help="the head's AUs, comma-separated (overrides --frontend's list)")
    p.add_argument("--overwrite", action="store_true", help="replace a head folder facr wrote there")
    add_no_progress(p)
    add_json(p, "print the held-out metrics as one JSON object")


def _table_arguments(p) -> None:
    p.add_argument("runs", nargs="+", help="run folders (each with a metrics.json)")
    add_json(p, "print {\"runs\": [...]} as one JSON object")


GROUP = Group("train", "train models (Stage 1: the faithful reasoner)", commands=(
    Command("reasoner", "train the faithful AU reasoner (same code as recipes/train_reasoner.py)",
            _reasoner_arguments, cmd_train_reasoner,
            description="Train x -> z -> emotion head with the counterfactual-faithfulness objective.",
            epilog=example("facr train reasoner --config recipes/configs/reasoner_synth.yaml --faith off "
                           "--out runs/nofaith")),
    Command("verbalizer", "train the gated verbalizer on a trained reasoner (same code as "
                          "recipes/train_verbalizer.py)", _verbalizer_arguments, cmd_train_verbalizer,
            description="Stage 2: run the frozen reasoner over training faces, build rationale targets from its "
                        "invoked AUs, and train the z-conditioned soft prompt and the AU tokens of a frozen LM.",
            epilog=example("facr train verbalizer --reasoner demo-out/experiment/cells/facr/seed0/fixed "
                           "--data demo-out/synth --backbone smollm2-135m --max-steps 100 --out runs/verbalizer")),
    Command("head", "train the emotion head on AU vectors (the SCM's, or a labelled AU table): a reasoner for any "
                    "front end", _head_arguments, cmd_train_head,
            description="Train the graph-conditioned emotion head z -> y with the counterfactual-faithfulness "
                        "objective on AU vectors instead of pixels: drawn from the benchmark's structural causal "
                        "model (default; no images), or read from a labelled OpenFace / OpenFace 3.0 / py-feat / "
                        "LibreFace table.",
            epilog=example("facr train head --frontend mediapipe --graph emfacs --out runs/head",
                           "facr train head --data openface.csv --label-column emotion --out runs/head-openface")),
    Command("table", "the held-out metrics of several run folders side by side (a markdown table)",
            _table_arguments, cmd_train_table,
            description="Read RUN/metrics.json of each run folder and print them as one markdown table: "
                        "recognition, AU F1, counterfactual sensitivity / invariance and graph agreement (own and "
                        "true graph).",
            epilog=example("facr train table runs/synth/facr runs/synth/nofaith runs/synth/permuted")),
))
