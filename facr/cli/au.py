"""``facr au``: the action-unit vocabulary (list it, parse spellings)."""

from __future__ import annotations

from facr.cli.base import Command, Group, add_json, example, print_json


def cmd_au_list(args) -> int:
    from facr import au

    rows = [{"id": a.id, "name": a.name, "region": a.region, "aliases": list(a.aliases)} for a in au.AUS.values()]
    if args.json:
        print_json({"aus": rows, "pspi": [f"AU{n}" for n in au.PSPI_AUS]})
    else:
        for r in rows:
            alias = f"  (also: {', '.join(r['aliases'])})" if r["aliases"] else ""
            print(f"{r['id']:<5} {r['name']:<22} {r['region']}{alias}")
    return 0


def cmd_au_parse(args) -> int:
    from facr import au

    results = [{"text": text, "au": au.canonical(text), "name": au.info(text).name} for text in args.text]
    if args.json:
        print_json({"parsed": results})
    else:
        for r in results:
            print(f"{r['text']!r} -> {r['au']} ({r['name']})")
    return 0


def _parse_arguments(p) -> None:
    p.add_argument("text", nargs="+", help="AU spellings")
    add_json(p)


GROUP = Group("au", "the action-unit vocabulary", commands=(
    Command("list", "every FACS main AU with its name and region", add_json, cmd_au_list,
            epilog=example("facr au list --json")),
    Command("parse", "map AU spellings to canonical ids", _parse_arguments, cmd_au_parse,
            epilog=example("facr au parse AU04_r 'au 12' 'Lip Corner Puller' '1. AU4 - Brow Lowerer'")),
))
