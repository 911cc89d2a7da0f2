"""``facr``: one subcommand per job, thin wrappers over the public API.

Errors a user can cause are :class:`~facr.errors.FacrError`; they are caught here only,
printed as one line ``facr: <file>: <problem>`` on stderr, and the exit status is 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from facr import __version__
from facr.audit import RATIONALE_DEFAULT_LIMIT
from facr.errors import FacrError, GraphError
from facr.utils import loads_json


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False))


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        """A usage error is one line too (argparse prints the whole usage first), exit 2."""
        self.exit(2, f"facr: {message} (see: {self.prog} --help)\n")


def _with_source(source: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn``; a :class:`GraphError` (no file of its own) is reported against ``source``."""
    try:
        return fn()
    except GraphError as exc:
        raise FacrError(source, exc.message) from None


# ------------------------------------------------------------------ facr au
def cmd_au_list(args) -> int:
    from facr import au

    rows = [{"id": a.id, "name": a.name, "region": a.region, "aliases": list(a.aliases)} for a in au.AUS.values()]
    if args.json:
        _print_json({"aus": rows, "pspi": [f"AU{n}" for n in au.PSPI_AUS]})
    else:
        for r in rows:
            alias = f"  (also: {', '.join(r['aliases'])})" if r["aliases"] else ""
            print(f"{r['id']:<5} {r['name']:<22} {r['region']}{alias}")
    return 0


def cmd_au_parse(args) -> int:
    from facr import au

    results = []
    for text in args.text:
        results.append({"text": text, "au": au.canonical(text), "name": au.info(text).name})
    if args.json:
        _print_json({"parsed": results})
    else:
        for r in results:
            print(f"{r['text']!r} -> {r['au']} ({r['name']})")
    return 0


# --------------------------------------------------------------- facr graph
def _graph_summary(graph) -> dict[str, Any]:
    return {
        "name": graph.name,
        "n_aus": len(graph.aus),
        "n_classes": len(graph.classes),
        "n_class_edges": len(graph.class_edges()),
        "n_au_edges": len(graph.au_edges()),
        "provenance": graph.provenance_counts(),
    }


def cmd_graph_validate(args) -> int:
    from facr.graph import load_graph

    try:
        graph = load_graph(args.file)
    except FacrError as exc:
        if not args.json:
            raise
        _print_json({"file": args.file, "valid": False, "error": exc.message})
        return 2
    summary = _graph_summary(graph)
    if args.json:
        _print_json({"file": args.file, "valid": True, "error": None, **summary})
    else:
        prov = ", ".join(f"{k} {v}" for k, v in summary["provenance"].items()) or "no edges"
        print(f"{args.file}: valid facr-graph v1 '{graph.name}': {summary['n_aus']} AUs, "
              f"{summary['n_classes']} classes, {summary['n_class_edges']} AU->class and "
              f"{summary['n_au_edges']} AU->AU edges ({prov})")
    return 0


def cmd_graph_show(args) -> int:
    from facr import au
    from facr.graph import resolve_graph

    graph = resolve_graph(args.file)
    if args.json:
        _print_json({
            **_graph_summary(graph),
            "aus": graph.aus,
            "classes": {c: graph.parents(c) for c in graph.classes},
            "au_edges": [e.to_dict() for e in graph.au_edges()],
            "meta": graph.meta,
        })
        return 0
    s = _graph_summary(graph)
    prov = ", ".join(f"{k} {v}" for k, v in s["provenance"].items()) or "no edges"
    print(f"{graph.name}: {s['n_aus']} AUs, {s['n_classes']} classes, "
          f"{s['n_class_edges']} AU->class and {s['n_au_edges']} AU->AU edges ({prov})")
    width = max((len(c) for c in graph.classes), default=0)
    for c in graph.classes:
        edges = graph.parent_edges(c)
        parents = ", ".join(f"{'+' if e.sign > 0 else '-'}{e.source} {au.info(e.source).name}" for e in edges)
        print(f"  {c:<{width}} <- {parents or '(no parents)'}")
    if graph.au_edges():
        print("AU->AU:")
        for e in graph.au_edges():
            print(f"  {e.source} -> {e.target} ({'+' if e.sign > 0 else '-'}, w={e.weight:g}, {e.provenance})")
    return 0


def cmd_graph_induce(args) -> int:
    from facr.graph import save_graph
    from facr.graph.induce import InductionConfig, induce_graph, read_au_table

    try:
        cfg = InductionConfig(
            reference=args.reference, n_bootstrap=args.bootstrap, stability_threshold=args.threshold,
            au_stability_threshold=args.threshold, au_edges=not args.no_au_edges, fill=args.fill, seed=args.seed,
            selection=args.selection,
        )
    except ValueError as exc:
        raise FacrError(None, str(exc)) from None
    if (args.table is None) == (args.data is None):
        raise FacrError("facr graph induce", "give either a CSV table or --data DIR (not both)")
    if args.table is not None:
        if not args.label_column:
            raise FacrError(args.table, "a CSV table needs --label-column")
        source = args.table
        table = read_au_table(args.table, args.label_column, args.presence_threshold)
    else:
        source = args.data
        table = _records_table(args)
    try:
        graph = induce_graph(table, cfg, name=args.name, progress=not args.json and sys.stderr.isatty())
    except ValueError as exc:
        raise FacrError(source, str(exc)) from None
    save_graph(graph, args.out)
    summary = {**_graph_summary(graph), "out": args.out, "contrast": graph.meta["contrast"],
               "n_rows": graph.meta["n_rows"], "n_rows_dropped": graph.meta["n_rows_dropped"],
               "emfacs_filled": graph.meta["emfacs_filled"]}
    if args.json:
        _print_json(summary)
    else:
        prov = ", ".join(f"{k} {v}" for k, v in summary["provenance"].items()) or "no edges"
        print(f"wrote {args.out}: {summary['n_class_edges']} AU->class and {summary['n_au_edges']} AU->AU edges "
              f"({prov}) from {summary['n_rows']} rows ({summary['n_rows_dropped']} dropped), "
              f"contrast {summary['contrast']}")
    return 0


def _load_labels(root: str, fmt: str | None, strict: bool, verify: bool = False):
    """The records of the dataset folder ``root`` (format ``fmt`` or recognised from its layout),
    labels only: a synth folder's images are not decoded (summaries and induction need no pixels)
    unless ``verify`` asks to decode every image once, as a check."""
    from facr.data.formats import FORMATS, detect_format, load

    if not os.path.isdir(root):
        raise FacrError(root, "no such folder")
    fmt = fmt or detect_format(root)
    if fmt is None:
        raise FacrError(root, f"cannot tell the dataset format from its layout; pass --format ({', '.join(FORMATS)})")
    return load(fmt, root, strict=strict, verify_images=verify, **({"decode": False} if fmt == "synth" else {}))


def _records_table(args):
    """The AU table of a dataset folder's ``--split`` (every split with ``all``) for ``graph induce --data``."""
    from facr.graph.induce import table_from_records

    result = _load_labels(args.data, args.format, strict=False)
    fmt = result.format
    records = result.records
    if args.split != "all":
        splits = {r.split for r in records}
        if splits == {None}:
            raise FacrError(args.data, f"{fmt} has no official splits; use --split all")
        records = [r for r in records if r.split == args.split]
        if not records:
            raise FacrError(args.data, f"no records in split {args.split!r}")
    try:
        return table_from_records(records, args.task, f"{args.data} ({fmt}, split {args.split})")
    except ValueError as exc:
        raise FacrError(args.data, str(exc)) from None


def cmd_graph_permute(args) -> int:
    from facr.graph import permute, resolve_graph, save_graph

    graph = resolve_graph(args.file)
    out = _with_source(args.file, lambda: permute(graph, args.seed))
    save_graph(out, args.out)
    moves = ", ".join(f"{c}<-{s}" for c, s in out.meta["row_taken_from"].items())
    print(f"wrote {args.out}: '{out.name}' ({moves})")
    return 0


def cmd_graph_diff(args) -> int:
    from facr.graph import diff, resolve_graph

    result = diff(resolve_graph(args.a), resolve_graph(args.b))
    if args.json:
        _print_json(result.to_dict())
    else:
        print(result.format())
    return 1 if (args.exit_code and not result.is_empty) else 0


def cmd_graph_draw(args) -> int:
    from facr.graph import resolve_graph
    from facr.graph.draw import draw_graph

    graph = resolve_graph(args.file)
    if Path(args.out).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise FacrError(args.out, "output must end in .png, .svg or .pdf")
    draw_graph(graph, args.out, show_au_edges=not args.no_au_edges)
    print(f"wrote {args.out}")
    return 0


def cmd_graph_export(args) -> int:
    from facr.graph import builtin_graph, save_graph

    save_graph(builtin_graph(args.name), args.out)
    print(f"wrote {args.out}")
    return 0


# ---------------------------------------------------------- facr data inspect
def cmd_data_inspect(args) -> int:
    from facr.data.summary import format_summary, summarize

    summary = summarize(_load_labels(args.root, args.format, strict=args.strict, verify=args.verify),
                        verified=args.verify)
    if args.json:
        _print_json(summary)
    else:
        print(format_summary(summary))
    if args.verify and summary["n_errors"]:
        # --verify is a check: a dataset with skipped rows fails it (exit 1), as diff --exit-code does
        n, bad = summary["n_errors"], summary["image_errors"]["count"]
        print(f"facr: {summary['root']}: {n} row{'s' * (n != 1)} skipped, {bad} for the image (missing, outside the "
              f"data root or not decodable)", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------ facr data synth
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
        cfg = SynthConfig(n=args.n, seed=args.seed, size=args.size, style=args.style, shortcut=args.shortcut,
                          shortcut_target=args.shortcut_target, subjects=args.subjects, contempt=args.contempt,
                          pain=not args.no_pain, emotion_prior=_emotion_prior(args.emotion_prior))
    except ValueError as exc:  # "size must be ..." names a field: report it as the flag that set it
        field, _, rest = str(exc).partition(" ")
        flag = f"--{field.replace('_', '-')}" if field in vars(args) and rest else "facr data synth"
        raise FacrError(flag, rest if flag != "facr data synth" else str(exc)) from None
    _check_flag("--workers", args.workers, 1, MAX_SYNTH_WORKERS)
    summary = write_synth(args.out, cfg, overwrite=args.overwrite, workers=args.workers,
                          progress=not args.json and sys.stderr.isatty())
    if args.json:
        _print_json(summary)
    else:
        sp = summary["splits"]
        print(f"wrote {summary['out']}: {summary['n']} images {cfg.size}x{cfg.size} style {cfg.style} "
              f"(train {sp['train']}, val {sp['val']}, test {sp['test']}; {cfg.subjects} subjects), "
              f"true graph {summary['graph']['class_edges']} class edges + {summary['graph']['au_edges']} AU edges, "
              f"{summary['images_per_s']:.0f} images/s")
    return 0


def cmd_data_preview(args) -> int:
    from facr.data.synth import preview_grid

    try:
        out = preview_grid(args.root, args.out, n=args.n, split=args.split, columns=args.columns, seed=args.seed)
    except ValueError as exc:
        raise FacrError(args.root, str(exc)) from None
    print(f"wrote {out}")
    return 0


# --------------------------------------------------------------- facr train
def cmd_train_reasoner(args) -> int:
    from facr.train import run_from_args

    result = run_from_args(args)
    m = result.metrics
    if args.json:
        _print_json(m)
    elif m:
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"wrote {result.out}/model: {m.get('split')} accuracy {fmt(m.get('accuracy'))}, macro-F1 "
              f"{fmt(m.get('macro_f1'))}, AUC {fmt(m.get('auc'))}, CF sensitivity {fmt(m.get('cf_sensitivity'))}, "
              f"CF invariance {fmt(m.get('cf_invariance'))}, graph-causal agreement {fmt(m.get('graph_causal_agreement'))}")
    return 0


def cmd_train_verbalizer(args) -> int:
    from facr.verbalizer.train import run_from_args

    metrics = run_from_args(args)
    if args.json:
        _print_json(metrics)
    elif metrics:
        print(f"wrote the verbalizer: {metrics['steps']} steps on {metrics['backbone']}, loss "
              f"{metrics['loss_first']:.3f} -> {metrics['loss_last']:.3f}, exact named set on 8 training faces "
              f"{metrics['exact_named_set']:.2f}")
        examples = json.loads((Path(metrics["out"]) / "examples.json").read_text(encoding="utf-8"))
        for e in examples[:4]:
            print(f"  {e['emotion']:<10} target {', '.join(e['target_aus']) or '-':<22} \"{e['rationale']}\"")
    return 0


def cmd_train_head(args) -> int:
    from facr.frontends.head import config_from_args, train_head

    run = train_head(config_from_args(args), progress=not args.no_progress, overwrite=args.overwrite)
    m = run.metrics
    if args.json:
        _print_json({"out": str(run.out), "dropped_aus": run.dropped_aus, **m})
        return 0
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"wrote {run.out}: an AU head over {len(m.get('recall', {}))} classes; held-out {m['n_samples']} faces: "
          f"accuracy {fmt(m['accuracy'])}, macro-F1 {fmt(m['macro_f1'])}, CF sensitivity {fmt(m['cf_sensitivity'])} "
          f"(present parents {fmt(m['cf_sensitivity_active'])}), CF invariance {fmt(m['cf_invariance'])}")
    if run.dropped_aus:
        print(f"left out {', '.join(run.dropped_aus)}: the front end codes them, the benchmark's SCM does not draw them")
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
        _print_json({"runs": rows})
        return 0
    cols = [("run", "run"), ("graph", "graph"), ("faith", "faith"), ("accuracy", "accuracy"),
            ("macro_f1", "macro-F1"), ("au_f1", "AU F1"), ("cf_sensitivity", "CF sensitivity"),
            ("cf_invariance", "CF invariance"), ("graph_causal_agreement", "agreement (own G)"),
            ("true_graph_agreement", "agreement (true G)")]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    split = {r.get("split") for r in rows}
    print(f"held-out split: {', '.join(sorted(str(s) for s in split))}")
    print("| " + " | ".join(h for _, h in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(fmt(r.get(k)) for k, _ in cols) + " |")
    return 0


# --------------------------------------------------------------- facr audit
def _print_rationale_audit(m: dict, out: str | None) -> int:
    from facr.audit.report import RATIONALE_ROWS, fmt

    print(f"rationale audit of {m['verbalizer']} ({m['backbone']}) on {m['n_samples']} faces of {m['data']} "
          f"[{m['split']}], {m['modes'][m['mode']]['n_rationales']} rationales per mode, against graph {m['graph']}")
    modes = list(m["modes"])
    print(f"  {'':<30}" + "".join(f"{mode:>13}" for mode in modes))
    for key, label in RATIONALE_ROWS:
        print(f"  {label:<30}" + "".join(f"{fmt(m['modes'][mode].get(key)):>13}" for mode in modes))
    for ex in m["modes"][m["mode"]].get("examples", [])[:2]:
        print(f"  {m['mode']}: \"{ex['rationale']}\" -> {ex['intervention']} -> \"{ex['rationale_after']}\"")
    if out:
        print(f"wrote {out}/report.md")
    return 0


def _print_named_audit(m: dict, out: str | None) -> int:
    from facr.audit.report import NAMED_ROWS, fmt

    what = f"generations {m['generations']}" if m["model_kind"] == "generations" else m["llm"]
    print(f"audited {m['model']} ({what}) on {m['n_samples']} faces of {m.get('data')} [{m['split']}], "
          f"against graph {m['graph']}")
    ci = m.get("ci95") or {}
    for key, label in NAMED_ROWS:
        if key in m and not (key.startswith("cf_") and m[key] is None):
            c = ci.get(key)
            print(f"  {label:<44} {fmt(m[key]):>7}" + (f"   95% CI [{c[0]:.3f}, {c[1]:.3f}]" if c else ""))
    if m.get("intervention_note"):
        print(f"  counterfactual figures: none ({m['intervention_note']})")
    _print_pixel_figures(m)
    for ex in (m.get("examples") or [])[:2]:
        print(f"  {ex['image']}: \"{ex['text'][:120]}\" -> named {', '.join(ex['named']) or '-'}; stated {ex['stated']}")
    if out:
        print(f"wrote {out}/report.md")
    return 0


def _print_pixel_figures(m: dict) -> None:
    """The pixel-level intervention figures of ``facr audit --pixel-cf``, when the audit has them."""
    if not m.get("pixel_cf_method"):
        return
    from facr.audit.report import pixel_lines

    faces = f", {m['pixel_n_faces']} faces" if m.get("pixel_n_faces") is not None else ""
    print(f"  in pixels ({m['pixel_cf_method']}{faces}):")
    for line in pixel_lines(m):
        print(f"    {line}")


def _warn_skipped(skipped: dict | None, data) -> None:
    """One stderr line when a run left images out (the count and the files are in its JSON)."""
    if skipped and skipped["count"]:
        print(f"facr: warning: {data}: skipped {skipped['count']} of {skipped['of']} images (missing, not decodable "
              f"or outside the data root; listed under skipped_images); first: {skipped['files'][0]}", file=sys.stderr)


def cmd_audit(args) -> int:
    import contextlib

    from facr.audit.auditors import AuditRequest, audit
    from facr.audit.report import fmt, render_report
    from facr.outputs import output_dir

    try:
        request = AuditRequest(model=args.model, data=args.data, format=args.format, graph=args.graph,
                               split=args.split, subjects=args.subject, limit=args.limit, epsilon=args.epsilon,
                               margin=args.margin, batch_size=args.batch_size, oracle=not args.no_oracle,
                               seed=args.seed, progress=not (args.json or args.no_progress),
                               max_bad_images=args.max_bad_images,
                               options={"rationale": args.rationale, "modes": args.mode, "reasoner": args.reasoner,
                                        "maps": args.maps, "map_methods": args.map_method,
                                        "generate_batch_size": args.generate_batch_size,
                                        "generations": args.generations, "evidence": args.evidence, "llm": args.llm,
                                        "llm_url": args.llm_url, "llm_model": args.llm_model,
                                        "max_new_tokens": args.max_new_tokens, "workers": args.workers,
                                        "pixel_cf": args.pixel_cf, "pixel_limit": args.pixel_limit})
    except ValueError as exc:
        raise FacrError(args.model, str(exc)) from None
    # --out is claimed (checked and locked) before the audit runs, and written when it is done
    inputs = (args.model, args.data, args.reasoner, args.generations, args.graph)
    with (output_dir(args.out, "audit", overwrite=args.overwrite, inputs=inputs) if args.out
          else contextlib.nullcontext()) as folder:
        m = audit(request).metrics
        if folder is not None:
            render_report(m, folder)
    _warn_skipped(m.get("skipped_images"), args.data)
    if args.json:
        _print_json(m)
        return 0
    if m.get("model_kind") == "verbalizer-rationale":
        return _print_rationale_audit(m, args.out)
    if m.get("model_kind") in ("generations", "frozen-llm"):
        return _print_named_audit(m, args.out)
    print(f"audited {m.get('model')} ({m.get('model_kind')}) on {m.get('n_samples')} samples of {m.get('data')} "
          f"[{m.get('split')}], against graph {m.get('graph')}")
    from facr.audit.report import ROWS

    ci = m.get("ci95") or {}
    for key, label in ROWS:
        if key in m:
            c = ci.get(key)
            print(f"  {label:<24} {fmt(m[key]):>7}" + (f"   95% CI [{c[0]:.3f}, {c[1]:.3f}]" if c else ""))
    for key, value in (m.get("oracle") or {}).items():
        print(f"  oracle {key.replace('_', ' '):<34} {fmt(value)}")
    _print_pixel_figures(m)
    if m.get("maps"):
        mp = m["maps"]
        print(f"  where AUs are seen ({mp['ground_truth']}, {mp['n_images']} faces):")
        for name, sc in mp["methods"].items():
            print(f"    {name:<8} NRA {fmt(sc.get('nra'))}  EPG {fmt(sc.get('epg'))}  hit rate {fmt(sc.get('hit_rate'))}"
                  f"  ({sc.get('n')} AU instances)")
        agree = mp.get("contribution_agreement")
        if agree:
            print(f"    CE-FAM contributions vs do() effects: Spearman rho {fmt(agree['mean_rho_mean_vectors'])} "
                  f"(class means), {fmt(agree['mean_rho_per_face'])} (per face)")
    if args.out:
        print(f"wrote {args.out}/report.md")
    return 0


# ------------------------------------------------------------- facr explain
def cmd_explain_maps(args) -> int:
    from facr.audit.auditors import reasoner_folder
    from facr.chat.face import prepare_face
    from facr.explain import maps as M
    from facr.explain.overlay import explain_face, render
    from facr.graph import resolve_graph
    from facr.models.reasoner import load_reasoner
    from facr.utils import atomic_path

    folder = reasoner_folder(args.model)
    if folder is None:
        raise FacrError(args.model, "not a facr reasoner checkpoint (no model.safetensors + graph.json here or in model/)")
    model, graph = load_reasoner(folder)
    if args.method is not None:
        problem = M.available(model, args.method)
        if problem:
            raise FacrError(args.model, problem)
    if args.graph:
        graph = resolve_graph(args.graph)
    face = prepare_face(args.image, model.config.encoder.image_size, detect=not args.crop)
    fm = explain_face(model, graph, face.pixels, args.method, args.au)
    png = render(fm)
    with atomic_path(args.out) as tmp:
        tmp.write_bytes(png)
    summary = {**fm.summary(), "image": str(args.image), "face": face.note, "out": str(args.out), "graph": graph.name}
    if args.json:
        _print_json(summary)
        return 0
    print(f"{args.image}: {face.note}")
    print(f"predicted {fm.predicted} (p {fm.probability:.2f}); maps ({fm.method}) of "
          + (", ".join(fm.aus) if fm.aus else "no AU") + f" -> {args.out}")
    for a, info in summary["aus"].items():
        print(f"  {a:<5} {info['name']:<22} z {info['z']:.2f}  Δ {info['delta']:+.2f}  peak at "
              f"{100 * info['peak'][0]:.0f}% down, {100 * info['peak'][1]:.0f}% across")
    return 0


EXPLAIN_INPUT = "input"  # the verb `facr explain INPUT` runs; it is never typed (see _route_explain)
EXPLAIN_VERBS = ("maps",)


def _route_explain(argv: list[str]) -> list[str]:
    """``facr explain maps ...`` is the maps verb; ``facr explain`` followed by anything else (a file, a
    flag, nothing) is ``facr explain input ...``: INPUT needs no verb, and a file named maps is ./maps."""
    if argv[:1] == ["explain"] and (len(argv) < 2 or argv[1] not in EXPLAIN_VERBS):
        return ["explain", EXPLAIN_INPUT, *argv[1:]]
    return argv


def cmd_explain_input(args) -> int:
    from facr.explain.run import run_command

    return run_command(args)


# ---------------------------------------------------------- facr experiment
def cmd_experiment_run(args) -> int:
    from facr.audit.experiment import Experiment, load_experiment, render_results

    try:
        spec = load_experiment(args.file)
    except OSError as exc:
        raise FacrError(args.file, f"cannot read: {exc.strerror or exc}") from None
    if args.data:
        spec.data.path = args.data
    exp = Experiment(spec, args.file, args.out)
    if args.dry_run:
        cells = exp.cells()
        for c in cells:
            print(f"{'done' if c.done else 'todo'}  {c.arm.name} · seed {c.seed} · {c.fold}  ->  {c.path}")
        print(f"{len(cells)} cells, {sum(c.done for c in cells)} done")
        return 0
    results = exp.run(progress=not (args.no_progress or args.json))
    if args.json:
        _print_json({k: v for k, v in results.items() if k != "rows"})
    else:
        print(render_results(results), end="")
        print(f"wrote {exp.out}/results.md and results.json")
    return 0


# ---------------------------------------------------------------- facr emola
def _generation_records(args):
    from facr.audit.auditors import AuditRequest, load_audit_records

    try:
        request = AuditRequest(model="emola", data=args.data, format=args.format, split=args.split, limit=args.limit)
    except ValueError as exc:
        raise FacrError(args.data, str(exc)) from None
    records = load_audit_records(request)
    if not records:
        raise FacrError(args.data, "no record selected")
    return records


def _write_generations(rows: list[dict], out: str, as_json: bool, extra: dict) -> int:
    from facr.audit.external import read_named
    from facr.external.generations import write_generations

    n = write_generations(out, rows)
    none = sum(not read_named(r.get("output")) for r in rows)
    summary = {"out": str(out), "n_lines": n, "n_no_au_named": none, **extra}
    if as_json:
        _print_json(summary)
    else:
        print(f"wrote {n} generations to {out} ({none} name no AU)")
        for r in rows[:2]:
            print(f"  {r['image']}: \"{(r.get('output') or '')[:100]}\"")
    return 0


def _add_generation_io(p) -> None:
    """The faces a generations command reads (``_generation_records``) and the file it writes."""
    from facr.data.formats import FORMATS

    p.add_argument("--data", required=True, help="dataset folder (faces)")
    p.add_argument("--format", choices=FORMATS, default=None, help="dataset format (default: recognised)")
    p.add_argument("--split", default="test", help="which split (default test; 'all' for every record)")
    p.add_argument("--limit", type=int, default=None, help="the first N faces of the split")
    p.add_argument("--out", required=True, help="the generations JSONL to write")


def cmd_emola_generate(args) -> int:
    from facr.utils import file_target

    file_target(args.out)  # a folder named by --out is refused now, not after hours of generation
    tasks = ("au", "emotion") if args.task == "both" else (args.task,)
    if args.model == "hf-vlm":
        from facr.external.vlm import generate_vlm, load_vlm

        if not args.vlm:
            raise FacrError("--vlm", "--model hf-vlm needs --vlm PATH (a local image-text-to-text model folder)")
        records = _generation_records(args)
        model, processor = load_vlm(args.vlm, load_in_4bit=args.load_in_4bit)
        rows = generate_vlm(model, processor, records, args.data, tasks=tasks, batch_size=args.batch_size,
                            max_new_tokens=args.max_new_tokens, progress=not (args.json or args.no_progress),
                            source=f"hf-vlm {args.vlm}")
        if args.pixel_cf:
            from facr.audit.pixel import occlusion_answers
            from facr.external.vlm import ask_vlm

            occlusion_answers(lambda ims, prompts: ask_vlm(model, processor, ims, prompts,
                                                           max_new_tokens=args.max_new_tokens),
                              records, rows, tasks=tasks, batch_size=args.batch_size,
                              progress=not (args.json or args.no_progress))
    else:
        from facr.external.emola import generate_emola

        if args.pixel_cf:
            raise FacrError("--pixel-cf", "occluded answers are asked of --model hf-vlm only (EmoLA's driver runs in "
                                          "its own environment and reads image files)")

        missing = [f for f, v in (("--emola-repo", args.emola_repo), ("--model-path", args.model_path),
                                  ("--model-base", args.model_base)) if not v]
        if missing:
            raise FacrError("emola", f"--model emola needs {', '.join(missing)} (see docs/other-reasoners.md: EmoLA)")
        if args.task == "emotion" and not args.emotion_model_path:
            raise FacrError("--emotion-model-path", "--task emotion needs EmoLA's emotion checkpoint")
        records = _generation_records(args)
        rows = generate_emola(args.emola_repo, args.model_path, args.model_base, records, args.data,
                              emotion_model_path=args.emotion_model_path if "emotion" in tasks else None,
                              python=args.emola_python, load_in_4bit=args.load_in_4bit,
                              workdir=args.workdir or f"{args.out}.emola", max_new_tokens=args.max_new_tokens,
                              sample=args.sample, device=args.device, progress=not (args.json or args.no_progress),
                              source=f"EmoLA {Path(args.model_path).name}")
    return _write_generations(rows, args.out, args.json, {"model": args.model, "tasks": list(tasks)})


def cmd_emola_standin(args) -> int:
    from facr.external.standin import standin_generations

    records = _generation_records(args)
    classes = args.classes or sorted({r.emotion for r in records if r.emotion})
    if not classes:
        raise FacrError(args.data, "no labelled emotion in the selected records: pass --classes")
    rows = standin_generations(records, args.data, classes=classes, seed=args.seed, p_correct=args.p_correct,
                               p_prototype=args.p_prototype, p_seen=args.p_seen)
    return _write_generations(rows, args.out, args.json, {"model": "stand-in", "classes": classes})


# ------------------------------------------------------------------ facr llm
def cmd_llm_serve(args) -> int:
    from facr.external.llm import LocalChat
    from facr.external.openai_server import API_KEY_ENV, OpenAIServer, ServeConfig

    config = ServeConfig(host=args.host, port=args.port, api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
                         allow_remote=args.allow_remote, workers=args.workers, queue=args.queue, timeout=args.timeout,
                         max_request_bytes=args.max_request_bytes, max_new_tokens=args.max_new_tokens,
                         verbose=args.verbose)
    server = OpenAIServer(config)  # bound before the model loads: a bad or busy port costs nothing
    try:
        server.attach(LocalChat(args.model, max_new_tokens=args.max_new_tokens, batch_size=1), args.model)
        if config.remote:
            print(f"facr: warning: serving {args.host} over plain HTTP: the API key and the conversations cross the "
                  "network unencrypted (put a TLS proxy in front outside a trusted network)", file=sys.stderr)
        print(f"serving {args.model} at {server.url} (OpenAI-compatible chat, context {server.context_length} "
              f"tokens{', API key required' if config.api_key else ''}; Ctrl-C stops)", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


# ----------------------------------------------------------------- facr chat
def cmd_chat(args) -> int:
    from facr.chat.ui import run

    return run(args)


# --------------------------------------------------------------- facr models
def cmd_models_list(args) -> int:
    from dataclasses import asdict

    from facr.verbalizer.backbones import BACKBONES, backbone_status

    rows = [{**asdict(s), "status": backbone_status(s)} for s in BACKBONES.values()]
    if args.json:
        _print_json({"backbones": rows})
    else:
        for r in rows:
            print(f"{r['name']:<14} {r['kind']:<13} {r['status']:<30} {r['note']}")
    return 0


def cmd_models_import_gguf(args) -> int:
    from facr.verbalizer.backbones import import_gguf

    out = import_gguf(args.source, args.out, overwrite=args.overwrite)
    meta = json.loads((out / "facr_backbone.json").read_text(encoding="utf-8"))
    if args.json:
        _print_json({"out": str(out), **meta})
    else:
        print(f"wrote {out}: {meta['architecture']}, {meta['parameters'] / 1e6:.1f} M parameters, float32 "
              f"(from {meta['gguf_file']}, sha256 {meta['gguf_sha256'][:12]}…)")
    return 0


# ----------------------------------------------------------- facr frontend
def cmd_frontend_calibrate(args) -> int:
    from facr.frontends.mediapipe import MODEL_SHA256, MediaPipeFrontend, calibrate, read_labelled
    from facr.utils import file_target

    _check_flag("--limit", args.limit, 1, 10**9)
    _check_flag("--min-each", args.min_each, 1, 10**6)
    out = file_target(args.out)  # a folder at --out is refused before the work, not after
    result = _load_labels(args.data, args.format, strict=False)
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
        _print_json({"out": str(out), **fitted.info})
        return 0
    n_fit = sum(v == "fit" for v in fitted.source.values())
    print(f"wrote {out}: {n_fit} AUs fitted on {len(read.scores)} faces of {args.data} ({result.format}); "
          f"{read.no_face} without a face and {read.unreadable} unreadable skipped")
    for a, line in report.items():
        print(f"  {a:<5} {line}")
    return 0


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="facr",
        description="Faithful facial-emotion explanations: AU->emotion causal graphs, faithful reasoners, audits.",
        epilog="examples:\n  facr graph show graphs/emfacs.json\n  facr au parse 'AU04_r' 'Lip Corner Puller'",
    )
    parser.add_argument("--version", action="version", version=f"facr {__version__}")
    nouns = parser.add_subparsers(dest="noun", metavar="{au,graph,data,train,audit,explain,frontend,experiment,models,emola,llm,chat}", required=True)

    # facr au ...
    au_p = nouns.add_parser("au", help="the action-unit vocabulary")
    au_v = au_p.add_subparsers(dest="verb", required=True)
    p = au_v.add_parser("list", help="every FACS main AU with its name and region",
                        epilog="example:\n  facr au list --json", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_au_list)
    p = au_v.add_parser("parse", help="map AU spellings to canonical ids",
                        epilog="example:\n  facr au parse AU04_r 'au 12' 'Lip Corner Puller' '1. AU4 - Brow Lowerer'",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("text", nargs="+", help="AU spellings")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_au_parse)

    # facr graph ...
    g_p = nouns.add_parser("graph", help="AU->emotion causal graphs (facr-graph files)")
    g_v = g_p.add_subparsers(dest="verb", required=True)

    def sub(name, help, example, func):
        p = g_v.add_parser(name, help=help, description=help, epilog=f"example:\n  {example}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    p = sub("validate", "check a facr-graph file against graphs/SPEC.md",
            "facr graph validate graphs/emfacs.json", cmd_graph_validate)
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub("show", "class -> signed parents (a file, or a built-in name: emfacs, pspi)",
            "facr graph show graphs/emfacs.json --json", cmd_graph_show)
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub("induce", "induce G from AU labels: a CSV of AU columns and a label column, or a dataset folder",
            "facr graph induce faces.csv --label-column emotion --out induced.json --fill emfacs --seed 0\n"
            "  facr graph induce --data data/synth --out induced.json          (the train split of a dataset)\n"
            "  facr graph induce --data /data/UNBC-McMaster --split all --task pain --out pain.json",
            cmd_graph_induce)
    p.add_argument("table", nargs="?", default=None,
                   help="CSV: one column per AU (any spelling; 0/1 or intensity) and a label column")
    p.add_argument("--label-column", default=None, help="name of the label column (with a CSV)")
    from facr.data.formats import FORMATS

    p.add_argument("--data", default=None, metavar="DIR", help="a dataset folder instead of a CSV (any facr format)")
    p.add_argument("--format", choices=FORMATS, default=None, help="with --data: its format (default: guessed)")
    p.add_argument("--split", choices=("train", "val", "test", "all"), default="train",
                   help="with --data: which split to learn from (default train)")
    p.add_argument("--task", choices=("emotion", "pain"), default="emotion",
                   help="with --data: emotion classes, or pain/no_pain from PSPI > 0 (default emotion)")
    p.add_argument("--out", required=True, help="facr-graph file to write")
    p.add_argument("--fill", choices=["emfacs"], default=None, help="give classes with no induced parent their EMFACS prototype")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference", default="auto",
                   help="contrast: 'auto' (neutral if present), 'rest' (one-vs-rest), or a class name")
    p.add_argument("--bootstrap", type=int, default=50, help="bootstrap resamples for edge stability (default 50)")
    p.add_argument("--threshold", type=float, default=0.9, help="minimum edge stability to keep an edge (default 0.9)")
    p.add_argument("--selection", choices=("stability", "nonzero"), default="stability",
                   help="stability: keep edges selected in >= --threshold of the resamples (default); nonzero: every "
                        "non-zero coefficient is an edge (the paper; with --reference rest: its one-vs-rest graph)")
    p.add_argument("--presence-threshold", type=float, default=None,
                   help="intensity at which an AU counts as present (default 1 for 0-5 scales, else 0.5)")
    p.add_argument("--no-au-edges", action="store_true", help="skip AU->AU neighbourhood selection")
    p.add_argument("--name", default=None, help="graph name (default: induced-<table>)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub("permute", "the corrupted-graph control: class parent sets permuted with a seed",
            "facr graph permute graphs/emfacs.json --seed 1 --out permuted.json", cmd_graph_permute)
    p.add_argument("file")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)

    p = sub("diff", "edges added, removed and sign-flipped from graph A to graph B",
            "facr graph diff graphs/emfacs.json induced.json --json", cmd_graph_diff)
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--exit-code", action="store_true", help="exit 1 when the graphs differ")

    p = sub("draw", "draw G: AUs left, classes right, green + / red -, width = weight",
            "facr graph draw graphs/emfacs.json --out emfacs.png", cmd_graph_draw)
    p.add_argument("file")
    p.add_argument("--out", required=True, help=".png, .svg or .pdf")
    p.add_argument("--no-au-edges", action="store_true", help="leave out AU->AU arcs")

    p = sub("export", "write a built-in graph (emfacs, pspi) to a file, e.g. to start your own verified graph",
            "facr graph export emfacs --out my-verified.json", cmd_graph_export)
    p.add_argument("name", choices=["emfacs", "pspi"])
    p.add_argument("--out", required=True)

    # facr train ...
    t_p = nouns.add_parser("train", help="train models (Stage 1: the faithful reasoner)")
    t_v = t_p.add_subparsers(dest="verb", required=True)
    p = t_v.add_parser(
        "reasoner", help="train the faithful AU reasoner (same code as recipes/train_reasoner.py)",
        description="Train x -> z -> emotion head with the counterfactual-faithfulness objective.",
        epilog="example:\n  facr train reasoner --config recipes/configs/reasoner_synth.yaml --faith off --out runs/nofaith",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    from facr.train_args import add_train_arguments

    add_train_arguments(p)
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON object")
    p.set_defaults(func=cmd_train_reasoner)
    p = t_v.add_parser(
        "verbalizer", help="train the gated verbalizer on a trained reasoner (same code as recipes/train_verbalizer.py)",
        description="Stage 2: run the frozen reasoner over training faces, build rationale targets from its invoked "
                    "AUs, and train the z-conditioned soft prompt and the AU tokens of a frozen LM.",
        epilog="example:\n  facr train verbalizer --reasoner demo-out/experiment/cells/facr/seed0/fixed "
               "--data demo-out/synth --backbone smollm2-135m --max-steps 100 --out runs/verbalizer",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    from facr.verbalizer.train import add_verbalizer_arguments

    add_verbalizer_arguments(p)
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON object")
    p.set_defaults(func=cmd_train_verbalizer)
    p = t_v.add_parser(
        "head", help="train the emotion head on AU vectors (the SCM's, or a labelled AU table): a reasoner for any "
                     "front end",
        description="Train the graph-conditioned emotion head z -> y with the counterfactual-faithfulness objective on "
                    "AU vectors instead of pixels: drawn from the benchmark's structural causal model (default; no "
                    "images), or read from a labelled OpenFace / OpenFace 3.0 / py-feat / LibreFace table.",
        epilog="examples:\n  facr train head --frontend mediapipe --graph emfacs --out runs/head\n"
               "  facr train head --data openface.csv --label-column emotion --out runs/head-openface",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    from facr.frontends.head import add_head_arguments

    add_head_arguments(p)
    p.add_argument("--json", action="store_true", help="print the held-out metrics as one JSON object")
    p.set_defaults(func=cmd_train_head)
    p = t_v.add_parser(
        "table", help="the held-out metrics of several run folders side by side (a markdown table)",
        description="Read RUN/metrics.json of each run folder and print them as one markdown table: recognition, "
                    "AU F1, counterfactual sensitivity / invariance and graph agreement (own and true graph).",
        epilog="example:\n  facr train table runs/synth/facr runs/synth/nofaith runs/synth/permuted",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run folders (each with a metrics.json)")
    p.add_argument("--json", action="store_true", help="print {\"runs\": [...]} as one JSON object")
    p.set_defaults(func=cmd_train_table)

    # facr audit
    p = nouns.add_parser(
        "audit", help="interventional faithfulness audit of a model on a dataset (report, JSON)",
        description="Audit a model's explanations by intervention: for every sample and AU, do(z_k = 0) and "
                    "measure how the class logits move. Reports recognition (accuracy, macro-F1, AUC), "
                    "counterfactual sensitivity / invariance, graph-causal agreement of the invoked AUs, PSPI "
                    "agreement, active-AU precision / recall, per class and per subject, with subject-level "
                    "bootstrap CIs; on the synthetic benchmark also the oracle figures (true parents, shortcut).",
        epilog="examples:\n  facr audit --model demo-out/experiment/cells/facr/seed0/fixed --data demo-out/synth --out demo-out/audit/facr\n"
               "  facr audit --model runs/r/model --data demo-out/synth --graph truth --limit 200 --json\n"
               "  facr audit --model runs/unbc/model --data /data/UNBC --format unbc --split all --subject 042-ll042\n"
               "  facr audit --model runs/verbalizer/smollm2 --data demo-out/synth --rationale --limit 32\n"
               "  facr audit --model runs/r/model --data demo-out/synth --maps --limit 64 --json\n"
               "  facr audit --model runs/r/model --data demo-out/synth --pixel-cf --limit 480 --json\n\n"
               "models: a reasoner checkpoint folder or run folder; a verbalizer checkpoint or run folder (its\n"
               "reasoner's latent audit, or with --rationale the audit of its generated text); more auditors\n"
               "are registered by name",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True,
                   help="a reasoner or verbalizer checkpoint / run folder, or a registered auditor name")
    p.add_argument("--data", help="dataset folder (a facr synth folder, or a real dataset root with --format)")
    p.add_argument("--format", choices=FORMATS, default=None, help="dataset format (default: recognised)")
    p.add_argument("--graph", default=None,
                   help="score against this graph: a facr-graph file, emfacs, pspi, or truth (the dataset's "
                        "graph.json); default: the graph the model was trained with")
    p.add_argument("--split", default="test", help="which split (default test; 'all' for every record)")
    p.add_argument("--subject", action="append", default=None, help="only this subject (repeatable)")
    p.add_argument("--limit", type=int, default=None, help="audit the first N samples of the split")
    p.add_argument("--max-bad-images", type=float, default=0.05,
                   help="the share of the split's images that may be skipped as missing, not decodable or outside "
                        "the data root (counted in skipped_images) before the audit stops (default 0.05)")
    p.add_argument("--epsilon", type=float, default=None,
                   help="invariance tolerance ε (default: the run's training value, else 0.1)")
    p.add_argument("--margin", type=float, default=None, help="sensitivity margin (default ε)")
    p.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--no-oracle", action="store_true", help="skip the synthetic benchmark's oracle figures")
    p.add_argument("--out", default=None, help="write report.md, metrics.json and plots into this folder")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier audit report in --out")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    mp = p.add_argument_group("region maps (reasoner checkpoints)")
    mp.add_argument("--maps", action="store_true",
                    help="also score where each AU is seen: NRA, EPG and hit rate of every map method against the "
                         "benchmark's AU masks (or landmark ROI maps), with a random-map baseline, and CE-FAM's "
                         "contributions against do() effects")
    mp.add_argument("--map-method", action="append", choices=("gradcam", "cefam", "rollout", "agcm", "random"),
                    default=None, help="map method(s) to score (repeatable; default: every one that applies)")
    r = p.add_argument_group("verbalizer checkpoints")
    r.add_argument("--rationale", action="store_true",
                   help="audit the generated text: regenerate under every do(z_k = 0) and read the named AUs "
                        f"(default --limit {RATIONALE_DEFAULT_LIMIT})")
    r.add_argument("--mode", action="append", choices=("gated", "soft", "ungated"), default=None,
                   help="decoding mode(s) to audit (repeatable; default: all three, the checkpoint's mode first)")
    r.add_argument("--reasoner", default=None, help="the reasoner the verbalizer speaks for (default: its config's)")
    r.add_argument("--generate-batch-size", type=int, default=64,
                   help="rationales (or frozen-LLM queries) per generate call (default 64)")
    o = p.add_argument_group("other reasoners: --model emola (from generations), --model frozen-llm")
    o.add_argument("--generations", default=None,
                   help="emola: the generations JSONL (facr emola generate writes one; lines without labels are "
                        "joined with --data records by image)")
    o.add_argument("--evidence", choices=("labels", "reasoner"), default=None,
                   help="frozen-llm: the AU evidence it is handed (default: reasoner with --reasoner, else labels)")
    o.add_argument("--llm", default=None, help="frozen-llm: a local model, registry name or folder (default smollm2-135m)")
    o.add_argument("--llm-url", default=None, help="frozen-llm: an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1")
    o.add_argument("--llm-model", default=None, help="frozen-llm: the model name to send to the endpoint")
    o.add_argument("--max-new-tokens", type=int, default=96, help="frozen-llm: tokens per answer (default 96)")
    o.add_argument("--workers", type=int, default=4, help="frozen-llm: parallel requests to the endpoint (default 4)")
    px = p.add_argument_group("pixel-level interventions (is z faithful to the face?)")
    px.add_argument("--pixel-cf", nargs="?", const="auto", default=None, choices=("auto", "rerender", "occlusion"),
                    help="also intervene on the image: do(AU_k = 0) by re-rendering the synthetic benchmark (exact; "
                         "and hue / identity / pose / light changed) or by inpainting AU k's region on other data; "
                         "pixel AU sensitivity / leakage, pixel CF sensitivity / invariance, nuisance z shift, "
                         "latent-vs-pixel agreement (default auto: rerender where the data is the benchmark). "
                         "--model emola: score the occluded answers its generations carry")
    px.add_argument("--pixel-limit", type=int, default=None,
                    help="the first N audited faces only, for the pixel figures (default: all; 480 take ~1 min)")
    p.set_defaults(func=cmd_audit)

    # facr experiment
    e_p = nouns.add_parser("experiment", help="arms x seeds x folds -> train -> audit -> one table with statistics")
    e_v = e_p.add_subparsers(dest="verb", required=True)
    p = e_v.add_parser(
        "run", help="run (or resume) an experiment file and print its results table",
        description="Train every cell (arm, seed, fold) of an experiment that is not finished, audit it, and "
                    "aggregate: per-subject values averaged over seeds, paired Wilcoxon across subjects with Holm "
                    "correction, Cohen's d, bootstrap CIs. Finished cells are reused; interrupted ones resume.",
        epilog="examples:\n  facr experiment run audits/synth_table1.yaml\n"
               "  facr experiment run audits/unbc_table1.yaml --dry-run      (list the cells)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="experiment YAML (see audits/README.md)")
    p.add_argument("--out", default=None, help="experiment folder (default: the file's out, else runs/experiments/NAME)")
    p.add_argument("--data", default=None, help="the training data folder (overrides the file's data.path)")
    p.add_argument("--dry-run", action="store_true", help="list the cells and whether they are done; run nothing")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_experiment_run)

    # facr frontend
    f_p = nouns.add_parser("frontend", help="the real-face front end (MediaPipe blendshapes -> AUs)")
    f_v = f_p.add_subparsers(dest="verb", required=True)
    p = f_v.add_parser(
        "calibrate", help="fit the blendshape -> AU map on AU-labelled faces (a JSON file for --mapping)",
        description="Read every AU-labelled face of a dataset folder with MediaPipe's FaceLandmarker and fit one "
                    "logistic regression per AU on all 52 blendshape scores (classes balanced, so z = 0.5 is the "
                    "decision boundary). AUs with too few present or absent faces keep the hand table's row. "
                    "Load the result with MediaPipeFrontend(mapping=FILE).",
        epilog="examples:\n  facr frontend calibrate --data data/DISFA --format disfa --out maps/disfa.json\n"
               "  facr frontend calibrate --data data/synth --split train --limit 500 --out maps/synth.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="an AU-labelled dataset folder (any facr loader)")
    p.add_argument("--format", choices=FORMATS, default=None, help="its format (default: recognised from the layout)")
    p.add_argument("--out", required=True, help="the JSON file to write")
    p.add_argument("--split", choices=("all", "train", "val", "test"), default="all", help="which records (default all)")
    p.add_argument("--limit", type=int, default=None, help="at most this many labelled records")
    p.add_argument("--min-each", type=int, default=3,
                   help="fit an AU only with at least this many present and this many absent faces (default 3)")
    p.add_argument("--detector", choices=("mediapipe", "haar"), default="mediapipe", help="face detector (default mediapipe)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_frontend_calibrate)

    # facr models
    m_p = nouns.add_parser("models", help="the verbalizer's language-model backbones (registry, GGUF import)")
    m_v = m_p.add_subparsers(dest="verb", required=True)
    p = m_v.add_parser("list", help="the registered backbones and whether they are installed",
                       description="List the registered LM backbones: the paper's (a local folder or cached hub id) "
                                   "and the small ones that install from PyPI as GGUF files.",
                       epilog="example:\n  facr models list --json", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_models_list)
    p = m_v.add_parser(
        "import-gguf", help="turn a GGUF backbone into a plain transformers folder (float32 safetensors)",
        description="Load a GGUF file with transformers (the gguf package dequantises it), drop the GGUF "
                    "quantizer, and save config, weights and tokenizer as a normal transformers folder that "
                    "loads offline in about a second.",
        epilog="examples:\n  facr models import-gguf smollm2-135m --out models/smollm2-135m\n"
               "  facr models import-gguf path/to/model.gguf --out models/mine",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a registered GGUF backbone (smollm2-135m, gemma-3-270m) or a .gguf file")
    p.add_argument("--out", required=True, help="the folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace a backbone facr imported into --out before")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_models_import_gguf)

    # facr emola
    em_p = nouns.add_parser("emola", help="EmoLA-format generations: run EmoLA or a local VLM, or write the stand-in")
    em_v = em_p.add_subparsers(dest="verb", required=True)
    p = em_v.add_parser(
        "generate", help="ask faces EmoLA's questions (EmoLA itself, or a local image-text-to-text model) -> JSONL",
        description="Ask every selected face EmoLA's two questions (\"What AUs are conveyed by this face?\", "
                    "\"What emotions are conveyed by this face?\") and write one JSON line per face "
                    "(image, output, emotion_output, labels), the input of facr audit --model emola. "
                    "--model emola runs your EmoLA checkout and weights with EmoLA's own inputs (FABA-style JSON, "
                    "2d106det landmark features) in EmoLA's python environment, on a GPU; --model hf-vlm runs any "
                    "local transformers image-text-to-text model folder (a LLaVA, ...).",
        epilog="examples:\n  facr emola generate --model hf-vlm --vlm /models/llava-1.5-7b-hf --data /data/FABA --split test "
               "--out runs/llava.jsonl\n"
               "  facr emola generate --model emola --emola-repo ~/EmoLA --model-path ~/EmoLA/saved_checkpoints/"
               "llava-v1.5-7b-lora-emola-au \\\n      --emotion-model-path ~/EmoLA/saved_checkpoints/llava-v1.5-7b-lora-emola-emotion "
               "--model-base ~/EmoLA/checkpoints/llava-v1.5-7b \\\n      --emola-python ~/miniconda3/envs/emola/bin/python "
               "--data /data/FABA --out runs/emola.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("emola", "hf-vlm"), required=True, help="what answers")
    _add_generation_io(p)
    p.add_argument("--task", choices=("au", "emotion", "both"), default="both", help="which questions (default both)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="tokens per answer (default 256)")
    p.add_argument("--load-in-4bit", action="store_true", help="4-bit NF4 weights (bitsandbytes, CUDA GPU)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    v = p.add_argument_group("--model hf-vlm")
    v.add_argument("--vlm", default=None, help="a local image-text-to-text model folder (or a cached hub id)")
    v.add_argument("--batch-size", type=int, default=8, help="faces per generate call (default 8)")
    v.add_argument("--pixel-cf", action="store_true",
                   help="also ask again on the face with each named or labelled-active AU's region occluded "
                        "(inpainted): the lines carry \"occlusions\", which facr audit --model emola scores")
    g = p.add_argument_group("--model emola")
    g.add_argument("--emola-repo", default=None, help="your EmoLA checkout (github.com/JackYFL/EmoLA)")
    g.add_argument("--model-path", default=None, help="EmoLA's AU checkpoint (llava-v1.5-7b-lora-emola-au)")
    g.add_argument("--emotion-model-path", default=None, help="EmoLA's emotion checkpoint (for the emotion question)")
    g.add_argument("--model-base", default=None, help="the LLaVA-1.5-7B base folder")
    g.add_argument("--emola-python", default="python", help="the python of EmoLA's environment (default: python)")
    g.add_argument("--workdir", default=None,
                   help="EmoLA's inputs, answers and logs (default: OUT.emola/; a rerun resumes from it)")
    g.add_argument("--sample", action="store_true",
                   help="EmoLA's own sampling (top_p 0.5, temperature 0.01) instead of greedy decoding")
    g.add_argument("--device", default="cuda", help="the device EmoLA runs on (default cuda; EmoLA is fp16 on CUDA)")
    p.set_defaults(func=cmd_emola_generate)

    p = em_v.add_parser(
        "stand-in", help="an EmoLA-format generations file that is NOT EmoLA: a labelled stereotype describer",
        description="Write an EmoLA-format generations file from the labels, for running the EmoLA comparison where "
                    "EmoLA cannot run (no GPU, the synthetic benchmark). It is NOT EmoLA's output and every line says "
                    "so: it states the labelled emotion with probability --p-correct (else another), and names the "
                    "EMFACS prototype AUs of the stated emotion (each with --p-prototype) plus AUs labelled present "
                    "(each with --p-seen), in EmoLA's spellings. Its figures come from these settings.",
        epilog="example:\n  facr emola stand-in --data demo-out/synth --split all --out runs/standin.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_generation_io(p)
    p.add_argument("--classes", nargs="+", default=None, help="emotions a wrong answer is drawn from (default: the labelled ones)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--p-correct", type=float, default=0.7, help="probability of stating the labelled emotion (0.7)")
    p.add_argument("--p-prototype", type=float, default=0.8, help="probability of naming each prototype AU (0.8)")
    p.add_argument("--p-seen", type=float, default=0.4, help="probability of naming each AU labelled present (0.4)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_emola_standin)

    # facr llm
    l_p = nouns.add_parser("llm", help="serve a local LM as an OpenAI-compatible chat endpoint")
    l_v = l_p.add_subparsers(dest="verb", required=True)
    p = l_v.add_parser(
        "serve", help="an OpenAI-compatible /v1/chat/completions endpoint for a local model (greedy)",
        description="Serve a local model (a backbone registry name such as smollm2-135m, or a folder) at "
                    "http://HOST:PORT/v1 with GET /v1/models and POST /v1/chat/completions (greedy unless a "
                    "temperature is asked, one generation at a time, usage in every reply, stream: true as "
                    "server-sent events), for facr audit --model frozen-llm --llm-url or any OpenAI client on "
                    "machines without llama.cpp or vLLM. Binds 127.0.0.1 by default; bad requests get OpenAI-style "
                    "JSON errors (400, 401, 413, ...).",
        epilog="example:\n  facr llm serve --model smollm2-135m --port 8080 &\n"
               "  facr audit --model frozen-llm --llm-url http://127.0.0.1:8080/v1 --data demo-out/synth --limit 16\n"
               "  FACR_LLM_API_KEY=$(openssl rand -hex 16) facr llm serve --host 0.0.0.0 --allow-remote",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m", help="registry name or folder (default smollm2-135m)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need --allow-remote)")
    p.add_argument("--port", type=int, default=8080, help="port, 0..65535 (default 8080; 0 picks a free one)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a --host other machines can reach (needs an API key; the traffic is plain HTTP)")
    p.add_argument("--api-key", default=None,
                   help="require Authorization: Bearer KEY (default: $FACR_LLM_API_KEY, which stays out of ps)")
    p.add_argument("--workers", type=int, default=4, help="connections handled at once (default 4)")
    p.add_argument("--queue", type=int, default=8, help="connections waiting for a worker; more get 503 (default 8)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds a connection may stay silent (default 30)")
    p.add_argument("--max-request-bytes", type=int, default=1 << 20, help="largest request body (default 1 MiB)")
    p.add_argument("--max-new-tokens", type=int, default=96, help="tokens per answer when a request names no max_tokens (96)")
    p.add_argument("--verbose", action="store_true", help="log every request")
    p.set_defaults(func=cmd_llm_serve)

    # facr explain INPUT (the hidden verb EXPLAIN_INPUT, see _route_explain) and facr explain maps
    from facr.explain import run as explain_run

    x_p = nouns.add_parser("explain", help=explain_run.HELP)
    x_v = x_p.add_subparsers(dest="verb", required=True, metavar="{INPUT,maps}")
    p = x_v.add_parser(EXPLAIN_INPUT, prog="facr explain", description=explain_run.DESCRIPTION,
                       epilog=explain_run.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    explain_run.add_arguments(p)
    p.set_defaults(func=cmd_explain_input)
    p = x_v.add_parser(
        "maps", help="one overlay per invoked AU on a face (Grad-CAM, CE-FAM, rollout, AGCM attention)",
        description="Read a face with a reasoner and draw, for each AU it invokes for its prediction (the "
                    "top-|Pa(c)| by |do(z_k=0) effect|) or for the AUs you name, where on the face that AU unit "
                    "looks: gradcam (ResNet last stage), cefam (CE-FAM: gradient-fused activation maps, the layer "
                    "chosen by channel masking), rollout (ViT, gradient-weighted attention rollout), agcm (a "
                    "head: agcm model's own concept attention).",
        epilog="examples:\n  facr explain maps --model demo-out/experiment/cells/facr/seed0/fixed --image face.jpg --out overlay.png\n"
               "  facr explain maps --model runs/agcm --image crop.png --crop --method agcm --au AU12 --au AU6 --out au12.png --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a reasoner checkpoint or run folder")
    p.add_argument("--image", required=True, help="a picture with a face (or a face crop with --crop)")
    p.add_argument("--out", required=True, help="the overlay PNG to write")
    p.add_argument("--method", choices=("gradcam", "cefam", "rollout", "agcm", "random"), default=None,
                   help="map method (default: agcm for an agcm head, rollout for a ViT, else gradcam)")
    p.add_argument("--au", action="append", default=None, help="show this AU (repeatable; default: the invoked AUs)")
    p.add_argument("--graph", default=None, help="the graph whose Pa(c) sizes the invoked set (default: the model's)")
    p.add_argument("--crop", action="store_true", help="the picture is already a face crop: no detection")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_explain_maps)

    # facr chat
    from facr.chat import ui as chat_ui

    p = nouns.add_parser("chat", help=chat_ui.HELP, description=chat_ui.DESCRIPTION, epilog=chat_ui.EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    chat_ui.add_arguments(p)
    p.set_defaults(func=cmd_chat)

    # facr data ...
    d_p = nouns.add_parser("data", help="datasets: the synthetic benchmark and loaders for the real datasets")
    d_v = d_p.add_subparsers(dest="verb", required=True)
    # (data verbs are registered below, one block per verb)

    # facr data inspect
    p = d_v.add_parser(
        "inspect", help="summarise a dataset folder in its released layout (records, subjects, labels, errors)",
        description="Load a dataset in its released layout and summarise it: records, subjects, emotions, "
                    "AU prevalence, PSPI, and the malformed rows that were skipped.",
        epilog="examples:\n  facr data inspect --format unbc /data/UNBC-McMaster\n"
               "  facr data inspect --format affwild2 /data/Aff-Wild2 --json\n"
               "  facr data inspect my-synth-data/        (a facr synth dataset folder: no --format needed)\n"
               "  facr data inspect --verify /data/AffectNet   (decode every image; exit 1 if a row is skipped)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="the dataset folder")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="dataset format (default: guessed from the folder's layout)")
    p.add_argument("--strict", action="store_true", help="stop at the first malformed row instead of skipping it")
    p.add_argument("--verify", action="store_true",
                   help="decode every image (bounded) and list those that do not; exit 1 when any row was skipped")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_data_inspect)

    # facr data synth
    p = d_v.add_parser(
        "synth", help="render the known-structure synthetic face benchmark (images, labels, true graph)",
        description="Render the synthetic face benchmark: faces whose AUs are drawn at their anatomical places, "
                    "generated by a structural causal model whose graph is written to OUT/graph.json. "
                    "OUT is a Hugging Face DatasetDict (datasets.load_from_disk) with train/val/test "
                    "(subject-disjoint) and config.json. Same seed, same dataset.",
        epilog="examples:\n  facr data synth --out data/synth --n 5000 --seed 0\n"
               "  facr data synth --out data/synth-shortcut --n 5000 --shortcut 0.9   (background hue tracks the "
               "class in train/val only)\n"
               "  facr data synth --out data/synth-b --n 2000 --style b                (the second domain)\n"
               "  facr data synth --out data/pain --n 3000 --emotion-prior neutral=1 --shortcut 0.8 "
               "--shortcut-target pain")
    p.add_argument("--out", required=True, help="output folder (missing or empty; an earlier synth folder with --overwrite)")
    p.add_argument("--n", type=int, default=2000, help="number of images (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--size", type=int, default=112, help="image side in pixels, a multiple of 4 (default 112)")
    p.add_argument("--style", choices=("a", "b"), default="a", help="rendering style / domain (default a)")
    p.add_argument("--shortcut", type=float, default=0.0, metavar="RATE",
                   help="probability that the background hue shows the image's class in train/val (test: never "
                        "more than chance); default 0 = no shortcut")
    p.add_argument("--shortcut-target", choices=("emotion", "pain"), default="emotion",
                   help="the label the shortcut tracks (default emotion)")
    p.add_argument("--subjects", type=int, default=25, help="number of subjects (default 25)")
    p.add_argument("--contempt", action="store_true", help="add contempt as an eighth emotion")
    p.add_argument("--no-pain", action="store_true", help="switch the pain process off")
    p.add_argument("--emotion-prior", default=None, metavar="NAME=W,...",
                   help="class weights, e.g. neutral=1 for a UNBC-like pain set (default uniform)")
    p.add_argument("--workers", type=int, default=None, help="rendering processes (default: 2 for 1000+ images)")
    p.add_argument("--overwrite", action="store_true", help="replace a synth folder facr wrote into OUT before")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=cmd_data_synth)

    # facr data preview
    p = d_v.add_parser(
        "preview", help="save a grid of captioned samples of a synth dataset as a PNG",
        description="Save a grid of samples of a facr synth dataset, each captioned with its emotion, PSPI and "
                    "active AUs, to look at what a model will see.",
        epilog="example:\n  facr data preview data/synth --out grid.png --n 32")
    p.add_argument("root", help="a folder written by facr data synth")
    p.add_argument("--out", required=True, help="the PNG to write")
    p.add_argument("--n", type=int, default=32, help="number of samples (default 32)")
    p.add_argument("--split", choices=("train", "val", "test"), default=None, help="take samples from one split")
    p.add_argument("--columns", type=int, default=8, help="grid columns (default 8)")
    p.add_argument("--seed", type=int, default=0, help="which samples (default 0)")
    p.set_defaults(func=cmd_data_preview)
    return parser


def _check_flag(flag: str, value: int | None, low: int, high: int) -> None:
    """One line naming ``flag`` and its allowed range when an integer flag is out of it."""
    if value is not None and not low <= value <= high:
        raise FacrError(flag, f"must be in [{low}, {high}], got {value}")


def _check_seed(args) -> None:
    """``--seed`` of every command, checked once here: numpy refuses a negative seed deep inside a run."""
    from facr.config import MAX_SEED

    if isinstance(getattr(args, "seed", None), int):
        _check_flag("--seed", args.seed, 0, MAX_SEED)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``facr`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(_route_explain(list(sys.argv[1:] if argv is None else argv)))
    try:
        _check_seed(args)
        return int(args.func(args) or 0)
    except FacrError as exc:
        print(f"facr: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facr: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) stopped early: not an error of ours. Point stdout at
        # devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
