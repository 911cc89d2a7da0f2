"""``facr audit``: the interventional faithfulness audit of a model on a dataset (report, JSON); the
auditor is chosen by ``--model`` (a checkpoint folder, or a registered name such as emola, frozen-llm)."""

from __future__ import annotations

import sys

from facr.cli.base import Command, Group, add_json, add_no_progress, example, print_json
from facr.errors import FacrError
from facr.flags import add_fields, given

# the AuditRequest fields `facr audit` sets (their flags, help and defaults are the dataclass's)
AUDIT_FIELDS = ("model", "data", "format", "graph", "split", "subjects", "limit", "max_bad_images", "epsilon",
                "margin", "batch_size", "seed", "oracle")


def _request(args):
    """The :class:`~facr.audit.auditors.AuditRequest` the flags say."""
    from facr.audit.auditors import AuditRequest

    try:
        return AuditRequest(**given(args, AuditRequest, AUDIT_FIELDS), progress=not (args.json or args.no_progress),
                            options={"rationale": args.rationale, "modes": args.mode, "reasoner": args.reasoner,
                                     "maps": args.maps, "map_methods": args.map_method,
                                     "generate_batch_size": args.generate_batch_size,
                                     "generations": args.generations, "evidence": args.evidence, "llm": args.llm,
                                     "llm_url": args.llm_url, "llm_model": args.llm_model,
                                     "max_new_tokens": args.max_new_tokens, "workers": args.workers,
                                     "pixel_cf": args.pixel_cf, "pixel_limit": args.pixel_limit})
    except ValueError as exc:
        raise FacrError(args.model, str(exc)) from None


def cmd_audit(args) -> int:
    import contextlib

    from facr.audit.auditors import audit
    from facr.audit.report import render_report
    from facr.outputs import output_dir

    request = _request(args)
    # --out is claimed (checked and locked) before the audit runs, and written when it is done
    inputs = (args.model, args.data, args.reasoner, args.generations, args.graph)
    with (output_dir(args.out, "audit", overwrite=args.overwrite, inputs=inputs) if args.out
          else contextlib.nullcontext()) as folder:
        m = audit(request).metrics
        if folder is not None:
            render_report(m, folder)
    _warn_skipped(m.get("skipped_images"), args.data)
    if args.json:
        print_json(m)
        return 0
    if m.get("model_kind") == "verbalizer-rationale":
        return _print_rationale_audit(m, args.out)
    if m.get("model_kind") in ("generations", "frozen-llm"):
        return _print_named_audit(m, args.out)
    return _print_latent_audit(m, args.out)


def _print_latent_audit(m: dict, out: str | None) -> int:
    from facr.audit.report import ROWS, fmt

    print(f"audited {m.get('model')} ({m.get('model_kind')}) on {m.get('n_samples')} samples of {m.get('data')} "
          f"[{m.get('split')}], against graph {m.get('graph')}")
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
            print(f"    {name:<8} NRA {fmt(sc.get('nra'))}  EPG {fmt(sc.get('epg'))}  hit rate "
                  f"{fmt(sc.get('hit_rate'))}  ({sc.get('n')} AU instances)")
        agree = mp.get("contribution_agreement")
        if agree:
            print(f"    CE-FAM contributions vs do() effects: Spearman rho {fmt(agree['mean_rho_mean_vectors'])} "
                  f"(class means), {fmt(agree['mean_rho_per_face'])} (per face)")
    if out:
        print(f"wrote {out}/report.md")
    return 0


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
        print(f"  {ex['image']}: \"{ex['text'][:120]}\" -> named {', '.join(ex['named']) or '-'}; "
              f"stated {ex['stated']}")
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


def _arguments(p) -> None:
    from facr.audit.auditors import AuditRequest
    from facr.data.formats import FORMATS

    add_fields(p, AuditRequest, AUDIT_FIELDS, extra={"format": {"choices": FORMATS}})
    p.add_argument("--out", default=None, help="write report.md, metrics.json and plots into this folder")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier audit report in --out")
    add_json(p)
    add_no_progress(p)
    _option_arguments(p)


def _option_arguments(p) -> None:
    """The flags one auditor reads (``AuditRequest.options``), in one group per auditor."""
    from facr.audit import GENERATE_BATCH_SIZE, RATIONALE_DEFAULT_LIMIT

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
    r.add_argument("--generate-batch-size", type=int, default=None,
                   help=f"rationales (or frozen-LLM queries) per generate call (default {GENERATE_BATCH_SIZE})")
    o = p.add_argument_group("other reasoners: --model emola (from generations), --model frozen-llm")
    o.add_argument("--generations", default=None,
                   help="emola: the generations JSONL (facr emola generate writes one; lines without labels are "
                        "joined with --data records by image)")
    o.add_argument("--evidence", choices=("labels", "reasoner"), default=None,
                   help="frozen-llm: the AU evidence it is handed (default: reasoner with --reasoner, else labels)")
    o.add_argument("--llm", default=None,
                   help="frozen-llm: a local model, registry name or folder (default smollm2-135m)")
    o.add_argument("--llm-url", default=None,
                   help="frozen-llm: an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1")
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


HELP = "interventional faithfulness audit of a model on a dataset (report, JSON)"
GROUP = Group("audit", HELP, command=Command(
    "audit", HELP, _arguments, cmd_audit,
    description="Audit a model's explanations by intervention: for every sample and AU, do(z_k = 0) and "
                "measure how the class logits move. Reports recognition (accuracy, macro-F1, AUC), "
                "counterfactual sensitivity / invariance, graph-causal agreement of the invoked AUs, PSPI "
                "agreement, active-AU precision / recall, per class and per subject, with subject-level "
                "bootstrap CIs; on the synthetic benchmark also the oracle figures (true parents, shortcut).",
    epilog=example(
        "facr audit --model demo-out/experiment/cells/facr/seed0/fixed --data demo-out/synth "
        "--out demo-out/audit/facr",
        "facr audit --model runs/r/model --data demo-out/synth --graph truth --limit 200 --json",
        "facr audit --model runs/unbc/model --data /data/UNBC --format unbc --split all --subject 042-ll042",
        "facr audit --model runs/verbalizer/smollm2 --data demo-out/synth --rationale --limit 32",
        "facr audit --model runs/r/model --data demo-out/synth --maps --limit 64 --json",
        "facr audit --model runs/r/model --data demo-out/synth --pixel-cf --limit 480 --json")
    + "\n\nmodels: a reasoner checkpoint folder or run folder; a verbalizer checkpoint or run folder (its\n"
      "reasoner's latent audit, or with --rationale the audit of its generated text); more auditors\n"
      "are registered by name"))
