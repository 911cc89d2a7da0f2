"""``facr graph``: AU→emotion causal graphs (facr-graph files): validate, show, induce, permute, diff,
draw, export."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from facr.cli.base import (
    Command,
    Group,
    add_json,
    add_out_file,
    example,
    load_labels,
    out_file,
    print_json,
    with_source,
)
from facr.errors import FacrError
from facr.flags import add_fields, given

# the InductionConfig fields `facr graph induce` sets (their flags, help and defaults are the dataclass's)
INDUCE_FIELDS = ("fill", "seed", "reference", "n_bootstrap", "stability_threshold", "selection", "au_edges")

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
        print_json({"file": args.file, "valid": False, "error": exc.message})
        return 2
    summary = _graph_summary(graph)
    if args.json:
        print_json({"file": args.file, "valid": True, "error": None, **summary})
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
        print_json({
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

    settings = given(args, InductionConfig, INDUCE_FIELDS)
    if "stability_threshold" in settings:  # --threshold: one stability bar for both kinds of edge
        settings["au_stability_threshold"] = settings["stability_threshold"]
    try:
        cfg = InductionConfig(**settings)
    except ValueError as exc:
        raise FacrError(None, str(exc)) from None
    if (args.table is None) == (args.data is None):
        raise FacrError("facr graph induce", "give either a CSV table or --data DIR (not both)")
    out_file(args, args.table, args.data)
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
        print_json(summary)
    else:
        prov = ", ".join(f"{k} {v}" for k, v in summary["provenance"].items()) or "no edges"
        print(f"wrote {args.out}: {summary['n_class_edges']} AU->class and {summary['n_au_edges']} AU->AU edges "
              f"({prov}) from {summary['n_rows']} rows ({summary['n_rows_dropped']} dropped), "
              f"contrast {summary['contrast']}")
    return 0


def _records_table(args):
    """The AU table of a dataset folder's ``--split`` (every split with ``all``) for ``graph induce --data``."""
    from facr.graph.induce import table_from_records

    result = load_labels(args.data, args.format, strict=False)
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

    out_file(args, args.file)
    graph = resolve_graph(args.file)
    out = with_source(args.file, lambda: permute(graph, args.seed))
    save_graph(out, args.out)
    moves = ", ".join(f"{c}<-{s}" for c, s in out.meta["row_taken_from"].items())
    print(f"wrote {args.out}: '{out.name}' ({moves})")
    return 0


def cmd_graph_diff(args) -> int:
    from facr.graph import diff, resolve_graph

    result = diff(resolve_graph(args.a), resolve_graph(args.b))
    if args.json:
        print_json(result.to_dict())
    else:
        print(result.format())
    return 1 if (args.exit_code and not result.is_empty) else 0


def cmd_graph_draw(args) -> int:
    from facr.graph import resolve_graph
    from facr.graph.draw import draw_graph

    out_file(args, args.file)
    if Path(args.out).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise FacrError(args.out, "output must end in .png, .svg or .pdf")
    graph = resolve_graph(args.file)
    draw_graph(graph, args.out, show_au_edges=not args.no_au_edges)
    print(f"wrote {args.out}")
    return 0


def cmd_graph_export(args) -> int:
    from facr.graph import builtin_graph, save_graph

    out_file(args)
    save_graph(builtin_graph(args.name), args.out)
    print(f"wrote {args.out}")
    return 0


def _file_arguments(p) -> None:
    p.add_argument("file")
    add_json(p)


def _induce_arguments(p) -> None:
    from facr.data.formats import FORMATS
    from facr.graph.induce import InductionConfig

    p.add_argument("table", nargs="?", default=None,
                   help="CSV: one column per AU (any spelling; 0/1 or intensity) and a label column")
    p.add_argument("--label-column", default=None, help="name of the label column (with a CSV)")
    p.add_argument("--data", default=None, metavar="DIR", help="a dataset folder instead of a CSV (any facr format)")
    p.add_argument("--format", choices=FORMATS, default=None, help="with --data: its format (default: guessed)")
    p.add_argument("--split", choices=("train", "val", "test", "all"), default="train",
                   help="with --data: which split to learn from (default train)")
    p.add_argument("--task", choices=("emotion", "pain"), default="emotion",
                   help="with --data: emotion classes, or pain/no_pain from PSPI > 0 (default emotion)")
    add_out_file(p, "facr-graph file to write")
    p.add_argument("--presence-threshold", type=float, default=None,
                   help="intensity at which an AU counts as present (default 1 for 0-5 scales, else 0.5)")
    p.add_argument("--name", default=None, help="graph name (default: induced-<table>)")
    add_fields(p, InductionConfig, INDUCE_FIELDS)
    add_json(p)


def _permute_arguments(p) -> None:
    p.add_argument("file")
    p.add_argument("--seed", type=int, required=True)
    add_out_file(p, "facr-graph file to write")


def _diff_arguments(p) -> None:
    p.add_argument("a")
    p.add_argument("b")
    add_json(p)
    p.add_argument("--exit-code", action="store_true", help="exit 1 when the graphs differ")


def _draw_arguments(p) -> None:
    p.add_argument("file")
    add_out_file(p, ".png, .svg or .pdf")
    p.add_argument("--no-au-edges", action="store_true", help="leave out AU->AU arcs")


def _export_arguments(p) -> None:
    p.add_argument("name", choices=["emfacs", "pspi"])
    add_out_file(p, "facr-graph file to write")


GROUP = Group("graph", "AU->emotion causal graphs (facr-graph files)", commands=(
    Command("validate", "check a facr-graph file against graphs/SPEC.md", _file_arguments, cmd_graph_validate,
            epilog=example("facr graph validate graphs/emfacs.json")),
    Command("show", "class -> signed parents (a file, or a built-in name: emfacs, pspi)", _file_arguments,
            cmd_graph_show, epilog=example("facr graph show graphs/emfacs.json --json")),
    Command("induce", "induce G from AU labels: a CSV of AU columns and a label column, or a dataset folder",
            _induce_arguments, cmd_graph_induce, epilog=example(
                "facr graph induce faces.csv --label-column emotion --out induced.json --fill emfacs --seed 0",
                "facr graph induce --data data/synth --out induced.json          (the train split of a dataset)",
                "facr graph induce --data /data/UNBC-McMaster --split all --task pain --out pain.json")),
    Command("permute", "the corrupted-graph control: class parent sets permuted with a seed", _permute_arguments,
            cmd_graph_permute, epilog=example("facr graph permute graphs/emfacs.json --seed 1 --out permuted.json")),
    Command("diff", "edges added, removed and sign-flipped from graph A to graph B", _diff_arguments,
            cmd_graph_diff, epilog=example("facr graph diff graphs/emfacs.json induced.json --json")),
    Command("draw", "draw G: AUs left, classes right, green + / red -, width = weight", _draw_arguments,
            cmd_graph_draw, epilog=example("facr graph draw graphs/emfacs.json --out emfacs.png")),
    Command("export", "write a built-in graph (emfacs, pspi) to a file, e.g. to start your own verified graph",
            _export_arguments, cmd_graph_export, epilog=example("facr graph export emfacs --out my-verified.json")),
))
