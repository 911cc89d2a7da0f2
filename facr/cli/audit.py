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
# The auditors' own flags, one group each: (title, options class, its fields); a field shared by two
# auditors is a flag once (its first group). Read back into AuditRequest.options (facr.audit.options).
OPTION_GROUPS = (
    ("region maps (reasoner checkpoints)", "ReasonerOptions", ("maps", "map_methods")),
    ("verbalizer checkpoints", "VerbalizerOptions", ("rationale", "modes", "reasoner", "backbone",
                                                     "generate_batch_size")),
    ("other reasoners: --model emola (from generations), --model frozen-llm", "EmolaOptions", ("generations",)),
    ("", "FrozenLLMOptions", ("evidence", "llm", "llm_url", "llm_model", "max_new_tokens", "workers")),
    ("pixel-level interventions (is z faithful to the face?)", "ReasonerOptions", ("pixel_cf", "pixel_limit")),
)


def _option_values(args) -> dict:
    """AuditRequest.options: the auditor flags the user gave."""
    from facr.audit import options

    out: dict = {}
    for _, cls, names in OPTION_GROUPS:
        out.update(given(args, getattr(options, cls), names))
    return out


def _request(args):
    """The :class:`~facr.audit.auditors.AuditRequest` the flags say."""
    from facr.audit.auditors import AuditRequest

    try:
        return AuditRequest(**given(args, AuditRequest, AUDIT_FIELDS), progress=not (args.json or args.no_progress),
                            options=_option_values(args))
    except ValueError as exc:  # "limit must be >= 1, got 0" -> facr: --limit: must be >= 1, got 0
        from facr.flags import flag_of

        name, _, rest = str(exc).partition(" ")
        if name in AUDIT_FIELDS:
            raise FacrError(flag_of(AuditRequest, name), rest) from None
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
    """The flags one auditor reads (``AuditRequest.options``), in one group per auditor, from its
    options dataclass (:mod:`facr.audit.options`)."""
    from facr.audit import RATIONALE_DEFAULT_LIMIT, options

    extra = {"rationale": {"help": "audit the generated text: regenerate under every do(z_k = 0) and read the named "
                                   f"AUs (default --limit {RATIONALE_DEFAULT_LIMIT})"}}
    group = p
    for title, cls, names in OPTION_GROUPS:
        group = p.add_argument_group(title) if title else group
        add_fields(group, getattr(options, cls), names, extra=extra)


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
