"""``facr models``: the verbalizer's language-model backbones (the registry, GGUF import)."""

from __future__ import annotations

import json

from facr.cli.base import Command, Group, add_json, example, print_json


def cmd_models_list(args) -> int:
    from dataclasses import asdict

    from facr.verbalizer.backbones import BACKBONES, backbone_status

    rows = [{**asdict(s), "status": backbone_status(s)} for s in BACKBONES.values()]
    if args.json:
        print_json({"backbones": rows})
    else:
        for r in rows:
            print(f"{r['name']:<14} {r['kind']:<13} {r['status']:<30} {r['note']}")
    return 0


def cmd_models_import_gguf(args) -> int:
    from facr.verbalizer.backbones import import_gguf

    out = import_gguf(args.source, args.out, overwrite=args.overwrite)
    meta = json.loads((out / "facr_backbone.json").read_text(encoding="utf-8"))
    if args.json:
        print_json({"out": str(out), **meta})
    else:
        print(f"wrote {out}: {meta['architecture']}, {meta['parameters'] / 1e6:.1f} M parameters, float32 "
              f"(from {meta['gguf_file']}, sha256 {meta['gguf_sha256'][:12]}…)")
    return 0


def _import_arguments(p) -> None:
    p.add_argument("source", help="a registered GGUF backbone (smollm2-135m, gemma-3-270m) or a .gguf file")
    p.add_argument("--out", required=True, help="the folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace a backbone facr imported into --out before")
    add_json(p)


GROUP = Group("models", "the verbalizer's language-model backbones (registry, GGUF import)", commands=(
    Command("list", "the registered backbones and whether they are installed", add_json, cmd_models_list,
            description="List the registered LM backbones: the paper's (a local folder or cached hub id) and the "
                        "small ones that install from PyPI as GGUF files.",
            epilog=example("facr models list --json")),
    Command("import-gguf", "turn a GGUF backbone into a plain transformers folder (float32 safetensors)",
            _import_arguments, cmd_models_import_gguf,
            description="Load a GGUF file with transformers (the gguf package dequantises it), drop the GGUF "
                        "quantizer, and save config, weights and tokenizer as a normal transformers folder that "
                        "loads offline in about a second.",
            epilog=example("facr models import-gguf smollm2-135m --out models/smollm2-135m",
                           "facr models import-gguf path/to/model.gguf --out models/mine")),
))
