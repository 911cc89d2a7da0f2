"""The audit report folder: ``metrics.json``, ``report.md`` and the plots it shows.

``per_class.png``: recognition and faithfulness per class. ``effects.png``: the mean intervention
effect Δ_kc = ŷ_c − ŷ_c^{do(z_k = 0)} as an AU × class heat map, with the audited graph's edges
marked (+ / −), so a reader sees at a glance whether the model's strongest effects sit on the
graph's edges and with the edges' signs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from facr.outputs import output_dir
from facr.utils import write_json

PER_CLASS_BARS = (("recall", "recall"), ("cf_sensitivity", "CF sensitivity"), ("cf_invariance", "CF invariance"),
                  ("graph_causal_agreement", "graph-causal agr."), ("graph_causal_agreement_signed", "agr., signed"),
                  ("active_au_precision", "active-AU precision"))

# The named-AU figures of the one yardstick (facr.audit.metrics.SET_KEYS), in every report alike.
SET_ROWS = (("graph_causal_agreement", "graph-causal agreement"),
            ("graph_causal_agreement_signed", "agreement, signed"),
            ("graph_causal_agreement_label", "agreement vs label"),
            ("graph_causal_agreement_label_signed", "agr. vs label, signed"),
            ("pspi_agreement", "PSPI agreement"), ("pspi_agreement_signed", "PSPI agreement, signed"),
            ("active_au_precision", "active-AU precision"), ("active_au_recall", "active-AU recall"))

ROWS = (("n_samples", "samples"), ("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("auc", "AUC"),
        ("f1_positive", "pain F1"), ("au_f1", "AU F1 (z > ½)"), ("cf_sensitivity", "CF sensitivity"),
        ("cf_sensitivity_seen", "CF sensitivity, parents z sees (z > ½)"),
        ("cf_sensitivity_label_cap", "CF sensitivity a z equal to the AU labels could reach"),
        ("cf_invariance", "CF invariance"), *SET_ROWS, ("aus_per_frame", "AUs named per frame"))

# The rationale audit's figures (facr.audit.rationale), one column per decoding mode.
# Invariance counts only faces whose rationale names a causal AU; the pair counts say what each rests on.
RATIONALE_ROWS = (("rationale_sensitivity", "rationale sensitivity"),
                  ("rationale_sensitivity_ceiling", "sensitivity ceiling (in T)"),
                  ("rationale_sensitivity_nameable", "sensitivity, shown AUs (z≥½)"),
                  ("n_sensitivity_pairs", "causal pairs"), ("n_sensitivity_pairs_nameable", "causal pairs, z ≥ ½"),
                  ("rationale_invariance", "rationale invariance"),
                  ("rationale_invariance_strict", "invariance (whole named set)"),
                  ("n_invariance_pairs", "irrelevant pairs scored"),
                  ("n_invariance_pairs_vacuous", "irrelevant pairs left out"),
                  ("ablated_au_drop_rate", "ablated-AU drop rate"), ("named_inactive", "named inactive AUs"),
                  ("empty_rationale_rate", "empty rationales (T not empty)"),
                  ("no_au_named_rate", "rationales naming no AU"), ("empty_target_rate", "faces with an empty T"),
                  ("well_formed_rate", "well-formed rationales"),
                  ("aus_per_rationale", "AUs per rationale"),
                  ("fluency_nll", "NLL/token under the bare LM"),
                  ("template_nll", "  template's NLL, same AUs"),
                  ("named_equals_target", "names exactly the target"), *SET_ROWS)

# Other reasoners (facr.audit.external): the named-AU figures, and the frozen LLM's simulatability (the
# paper's figures, against G, first; then those against its own answer).
NAMED_ROWS = (("n_samples", "samples"), ("n_no_au_named", "outputs naming no AU"),
              ("aus_per_frame", "AUs named per frame"), *SET_ROWS, ("emotion_accuracy", "emotion accuracy"),
              ("emotion_answered_rate", "answers stating an emotion"),
              ("simulatability_sensitivity", "simulatability sensitivity (parent removed)"),
              ("simulatability_invariance", "simulatability invariance (non-parent)"),
              ("self_simulatability_sensitivity", "self-simulatability sensitivity"),
              ("self_simulatability_invariance", "self-simulatability invariance"),
              ("self_simulatability_invariance_strict", "self-simulatability inv. (named set)"),
              ("emotion_change_on_named_removal", "emotion changes when a named AU is removed"),
              ("named_outside_evidence_per_frame", "AUs named outside the evidence, per frame"),
              ("cf_sensitivity", "CF sensitivity"), ("cf_invariance", "CF invariance"))
NAMED_KINDS = ("generations", "frozen-llm")

# facr audit --pixel-cf (facr.audit.pixel): z against the face, do() in pixels.
PIXEL_ROWS = (("pixel_au_sensitivity", "pixel AU sensitivity (z_k < ½ once AU k is gone)"),
              ("pixel_au_seen", "  of which: z saw the AU (z_k ≥ ½)"),
              ("pixel_au_drop_when_seen", "  of which: seen, then dropped"),
              ("pixel_au_leakage", "pixel AU leakage (mean |Δz_j|, other AUs)"),
              ("pixel_cf_sensitivity", "pixel CF sensitivity"), ("pixel_cf_invariance", "pixel CF invariance"),
              ("latent_vs_pixel_agreement", "latent vs pixel do(): same move of ŷ_ĉ"),
              ("latent_vs_pixel_prediction_agreement", "latent vs pixel do(): same prediction change"),
              ("shortcut_reliance", "shortcut reliance"),
              ("pixel_named_au_drop_rate", "named AU dropped when occluded"),
              ("pixel_emotion_change_rate", "emotion changes, named AU occluded"),
              ("pixel_emotion_change_rate_active", "emotion changes, labelled AU occluded"))


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def plot_per_class(metrics: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = list(metrics["per_class"])
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(classes)), 3.6), dpi=120)
    width = 0.8 / len(PER_CLASS_BARS)
    x = np.arange(len(classes))
    for j, (key, label) in enumerate(PER_CLASS_BARS):
        vals = [metrics["per_class"][c].get(key) for c in classes]
        ax.bar(x + (j - (len(PER_CLASS_BARS) - 1) / 2) * width, [np.nan if v is None else v for v in vals], width,
               label=label)
    ax.set_xticks(x, [f"{c}\n(n={metrics['per_class'][c].get('n_labelled', '?')})" for c in classes], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    model = "/".join(Path(str(metrics.get("model", ""))).parts[-3:])  # enough of the path to tell runs apart
    ax.set_title(f"per class — {model} vs graph {metrics.get('graph', '')}", fontsize=9)
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_effects(metrics: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eff = np.asarray(metrics["mean_effect"], dtype=float)  # [K, C]
    signs = np.asarray(metrics["graph_signs"])
    aus, classes = metrics["aus"], metrics["classes"]
    lim = float(np.abs(eff).max()) or 1.0
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(classes), 1.0 + 0.3 * len(aus)), dpi=120)
    im = ax.imshow(eff, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    for k in range(len(aus)):
        for c in range(len(classes)):
            if signs[k, c]:
                ax.text(c, k, "+" if signs[k, c] > 0 else "−", ha="center", va="center", fontsize=9, fontweight="bold")
    ax.set_xticks(range(len(classes)), classes, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(aus)), aus, fontsize=8)
    ax.set_title(f"mean Δ = ŷ − ŷ^do(z_k=0); +/−: edges of {metrics.get('graph', 'G')}", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _figure_table(metrics: dict, rows) -> list[str]:
    """The report's figure table: each of ``rows`` that ``metrics`` holds, with its subject-level
    95% CI and its chance level where there is one."""
    ci, chance = metrics.get("ci95") or {}, metrics.get("chance") or {}
    lines = ["| figure | value | 95% CI | chance |", "|---|---|---|---|"]
    for key, label in rows:
        if key not in metrics:
            continue
        c = ci.get(key)
        lines.append(f"| {label} | {fmt(metrics[key])} | {'n/a' if not c else f'[{c[0]:.3f}, {c[1]:.3f}]'} | "
                     f"{fmt(chance.get(key)) if key in chance else ''} |")
    return lines


def pixel_lines(metrics: dict) -> list[str]:
    """The pixel figures of an audit as text lines (the CLI's summary and the report's section)."""
    lines = [f"{label:<52} {fmt(metrics[key])}" for key, label in PIXEL_ROWS if key in metrics]
    for key, label in (("nuisance_z_shift", "nuisance z shift (mean |Δz|)"),
                       ("nuisance_prediction_change", "predictions changed by a nuisance")):
        if metrics.get(key):
            lines.append(f"{label:<52} " + ", ".join(f"{k} {fmt(v)}" for k, v in metrics[key].items()))
    pairs = ("pixel_n_pairs", "pixel_n_invisible", "pixel_n_sensitivity_pairs", "pixel_n_invariance_pairs")
    if all(k in metrics for k in pairs):
        lines.append(f"({metrics['pixel_n_pairs']} face-AU pairs: {metrics['pixel_n_sensitivity_pairs']} causal, "
                     f"{metrics['pixel_n_invariance_pairs']} irrelevant; {metrics['pixel_n_invisible']} left out as "
                     f"invisible)")
    return lines


def _detection_section(metrics: dict) -> list[str]:
    """Per AU, how z detects it (z > ½) where it is coded; the AU F1 above is the mean of the F1 column."""
    rows = {a: r for a, r in (metrics.get("au_detection") or {}).items() if r.get("n_coded")}
    if not rows:
        return []
    lines = ["", "## AU detection (z > ½), per AU", "", "| AU | coded | labelled present | called present | "
             "precision | recall | F1 |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {a} | {r['n_coded']} | {r['n_positive']} | {r['n_called']} | {fmt(r['precision'])} | "
              f"{fmt(r['recall'])} | {fmt(r['f1'])} |" for a, r in rows.items()]
    return lines


def _pixel_section(metrics: dict) -> list[str]:
    if not metrics.get("pixel_cf_method"):
        return []
    lines = ["", f"## In pixels ({metrics['pixel_cf_method']})", "",
             f"- intervention: {metrics.get('pixel_intervention')}", "", "```", *pixel_lines(metrics), "```"]
    per_au = metrics.get("pixel_per_au") or {}
    if per_au:
        lines += ["", "| AU | pairs | z saw it | dropped when seen | pixel AU sensitivity | leakage |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {a} | {v['n_pairs']} | {fmt(v.get('seen'))} | {fmt(v.get('drop_when_seen'))} | "
                  f"{fmt(v['au_sensitivity'])} | {fmt(v['leakage'])} |" for a, v in per_au.items()]
    return lines


def _skipped_lines(metrics: dict) -> list[str]:
    """The report's line on the images the audit left out (missing, undecodable, outside the data root)."""
    skipped = metrics.get("skipped_images")
    if not skipped or not skipped["count"]:
        return []
    files = "; ".join(f"`{f}`" for f in skipped["files"][:5]) + (" ..." if skipped["count"] > 5 else "")
    return [f"- skipped images: {skipped['count']} of {skipped['of']} (missing, not decodable or outside the data "
            f"root; all in metrics.json): {files}"]


def render_markdown(metrics: dict, plots: list[str]) -> str:
    lines = [f"# facr audit: {metrics.get('model')}", ""]
    lines += [f"- model kind: {metrics.get('model_kind')}; "
              f"trained against graph `{metrics.get('model_graph', 'n/a')}`",
              f"- scored against graph `{metrics.get('graph')}`; data `{metrics.get('data')}`, "
              f"split `{metrics.get('split')}`, task {metrics.get('task')}",
              f"- intervention: {metrics.get('intervention', 'n/a')}; ε = {fmt(metrics.get('epsilon'))}, "
              f"margin = {fmt(metrics.get('margin'))}",
              f"- subjects: {metrics.get('n_subjects', 'n/a')} (95% CIs resample subjects, not frames)",
              *_skipped_lines(metrics), ""]
    if metrics.get("graph_classes_without_parents"):
        lines += [f"Classes the graph gives no parents (no sensitivity pairs, agreement undefined): "
                  f"{', '.join(metrics['graph_classes_without_parents'])}", ""]
    if metrics.get("note"):
        lines += [metrics["note"], ""]
    lines += _figure_table(metrics, ROWS)
    if metrics.get("oracle"):
        o = metrics["oracle"]
        lines += ["", "## Oracle (synthetic benchmark: the true causes are known)", "",
                  "| figure | value |", "|---|---|"]
        for key in ("true_parent_agreement", "true_parent_agreement_signed", "true_parent_agreement_chance",
                    "true_graph_sensitivity",
                    "true_graph_invariance", "shortcut_reliance", "cue_effect_mean_abs", "max_au_effect_mean",
                    "prediction_follows_cue", "prediction_follows_cue_chance", "shortcut_rate_train"):
            if key in o:
                lines.append(f"| {key.replace('_', ' ')} | {fmt(o[key])} |")
        lines += ["", "Shortcut reliance: the share of predictions whose logit moves more under do(background hue) "
                  "than under the largest single-AU do(z_k = 0)."]
    lines += _detection_section(metrics)
    lines += _pixel_section(metrics)
    if metrics.get("per_class"):
        keys = [k for k, _ in PER_CLASS_BARS] + ["graph_causal_agreement_label", "active_au_recall", "aus_per_frame"]
        lines += ["", "## Per class", "",
                  "| class | n labelled | n predicted | " + " | ".join(k.replace("_", " ") for k in keys) + " |",
                  "|---|---|---|" + "---|" * len(keys)]
        for c, row in metrics["per_class"].items():
            lines.append(f"| {c} | {row.get('n_labelled', 'n/a')} | {row.get('n_predicted', 'n/a')} | "
                         + " | ".join(fmt(row.get(k)) for k in keys) + " |")
    if metrics.get("per_subject"):
        lines += ["", "## Per subject", "", "| subject | n | accuracy | AUC | CF sensitivity | CF invariance | "
                  "graph-causal agr. | agr., signed | active-AU precision |", "|---|---|---|---|---|---|---|---|---|"]
        for s, row in metrics["per_subject"].items():
            lines.append(f"| {s} | {row['n_samples']} | {fmt(row.get('accuracy'))} | {fmt(row.get('auc'))} | "
                         f"{fmt(row.get('cf_sensitivity'))} | {fmt(row.get('cf_invariance'))} | "
                         f"{fmt(row.get('graph_causal_agreement'))} | "
                         f"{fmt(row.get('graph_causal_agreement_signed'))} | {fmt(row.get('active_au_precision'))} |")
    for p in plots:
        lines += ["", f"![{p}]({p})"]
    return "\n".join(lines) + "\n"


def render_rationale_markdown(metrics: dict, plots: list[str]) -> str:
    modes = list(metrics["modes"])
    lines = [f"# facr rationale audit: {metrics.get('verbalizer')}", "",
             f"- backbone `{metrics.get('backbone')}`; reasoner `{metrics.get('reasoner')}` (trained against graph "
             f"`{metrics.get('model_graph')}`)",
             f"- scored against graph `{metrics.get('graph')}`; data `{metrics.get('data')}`, split "
             f"`{metrics.get('split')}`, {metrics.get('n_samples')} faces",
             f"- intervention: {metrics.get('intervention')}", "",
             "| figure | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for key, label in RATIONALE_ROWS:
        lines.append(f"| {label} | " + " | ".join(fmt(metrics["modes"][m].get(key)) for m in modes) + " |")
    lines += ["", "95% CIs (subjects resampled): " + "; ".join(
        f"{m} sensitivity {_ci(metrics['modes'][m], 'rationale_sensitivity')}, invariance "
        f"{_ci(metrics['modes'][m], 'rationale_invariance')}" for m in modes), ""]
    problems = {m: metrics["modes"][m].get("well_formed_problems") or {} for m in modes}
    lines += ["Well-formedness problems of the factual rationales, by rule (facr.verbalizer.wellformed): " + "; ".join(
        f"{m}: " + (", ".join(f"{rule} {n}" for rule, n in problems[m].items()) or "none") for m in modes), ""]
    latent = metrics.get("latent") or {}
    lines += ["The reasoner on the same faces (latent audit): " + ", ".join(
        f"{k.replace('_', ' ')} {fmt(v)}" for k, v in latent.items()), ""]
    for m in modes:
        ex = metrics["modes"][m].get("examples") or []
        if ex:
            lines += [f"## Examples ({m})", "",
                      "| emotion | rationale | intervention | emotion after | rationale after |",
                      "|---|---|---|---|---|"]
            lines += [f"| {e['emotion']} | {e['rationale']} | {e['intervention']} | {e['emotion_after']} | "
                      f"{e['rationale_after']} |" for e in ex]
            lines.append("")
    for p in plots:
        lines += [f"![{p}]({p})", ""]
    return "\n".join(lines)


def render_named_markdown(metrics: dict, plots: list[str]) -> str:
    """report.md of an EmoLA (generations) or frozen-LLM audit."""
    lines = [f"# facr audit: {metrics.get('model')} ({metrics.get('model_kind')})", ""]
    if metrics.get("model_kind") == "generations":
        lines += [f"- generations `{metrics.get('generations')}` ({metrics.get('n_lines')} lines, "
                  f"{metrics.get('n_unmatched_lines')} matched no selected record); sources: "
                  f"{', '.join(metrics.get('sources') or []) or 'not stated'}"]
    else:
        lines += [f"- LLM: {metrics.get('llm')}; evidence: {metrics.get('evidence')}; "
                  f"{metrics.get('n_queries')} distinct queries"]
    lines += [f"- scored against graph `{metrics.get('graph')}`; data `{metrics.get('data')}`, "
              f"split `{metrics.get('split')}`",
              f"- subjects: {metrics.get('n_subjects', 'n/a')} (95% CIs resample subjects, not frames)",
              f"- intervention: {metrics.get('intervention') or 'none'}", ""]
    if metrics.get("intervention_note"):
        lines += [f"**No intervention figures.** {metrics['intervention_note']}.", ""]
    if metrics.get("signed_agreement_note"):
        lines += [f"**No signed agreement.** {metrics['signed_agreement_note'][0].upper()}"
                  f"{metrics['signed_agreement_note'][1:]}.", ""]
    lines += _figure_table(metrics, NAMED_ROWS)
    lines += _pixel_section(metrics)
    keys = ("n_samples", "n_no_au_named", "aus_per_frame", "graph_causal_agreement", "graph_causal_agreement_label",
            "active_au_precision", "active_au_recall", "emotion_accuracy")
    if metrics.get("per_class"):
        lines += ["", "## Per class (the stated emotion, else the labelled one)", "",
                  "| class | " + " | ".join(k.replace("_", " ") for k in keys) + " |", "|---|" + "---|" * len(keys)]
        for c, row in metrics["per_class"].items():
            lines.append(f"| {c} | " + " | ".join(fmt(row.get(k)) for k in keys) + " |")
    if metrics.get("named_frequency"):
        lines += ["", "## How often each AU is named", "",
                  ", ".join(f"{a} {v:.2f}" for a, v in metrics["named_frequency"].items())]
    if metrics.get("examples"):
        lines += ["", "## Examples", "", "| image | label | stated | named | text |", "|---|---|---|---|---|"]
        for e in metrics["examples"]:
            text = e["text"].replace("|", "/").replace("\n", " ")
            lines.append(f"| {e['image']} | {e['label']} | {e['stated']} | {', '.join(e['named'])} | {text} |")
    for p in plots:
        lines += ["", f"![{p}]({p})"]
    return "\n".join(lines) + "\n"


def _ci(block: dict, key: str) -> str:
    c = (block.get("ci95") or {}).get(key)
    return "n/a" if not c else f"[{c[0]:.3f}, {c[1]:.3f}]"


def plot_rationale(metrics: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = (("rationale_sensitivity", "sensitivity"), ("rationale_invariance", "invariance"),
            ("ablated_au_drop_rate", "ablated-AU drop"), ("named_equals_target", "exact target"))
    modes = list(metrics["modes"])
    fig, ax = plt.subplots(figsize=(6.0, 3.2), dpi=120)
    width = 0.8 / len(modes)
    x = np.arange(len(keys))
    for j, m in enumerate(modes):
        vals = [metrics["modes"][m].get(k) for k, _ in keys]
        ax.bar(x + (j - (len(modes) - 1) / 2) * width, [np.nan if v is None else v for v in vals], width, label=m)
    ax.set_xticks(x, [label for _, label in keys], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"rationale audit — {metrics.get('backbone')}, {metrics.get('n_samples')} faces", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def render_report(metrics: dict, folder: str | os.PathLike) -> None:
    """Write ``metrics.json``, the plots and ``report.md`` of an audit into ``folder``."""
    folder = Path(folder)
    write_json(folder / "metrics.json", metrics)
    if metrics.get("model_kind") == "verbalizer-rationale":
        plot_rationale(metrics, folder / "rationale.png")
        (folder / "report.md").write_text(render_rationale_markdown(metrics, ["rationale.png"]), encoding="utf-8")
        return
    if metrics.get("model_kind") in NAMED_KINDS:
        (folder / "report.md").write_text(render_named_markdown(metrics, []), encoding="utf-8")
        return
    plots = []
    if metrics.get("per_class"):
        plot_per_class(metrics, folder / "per_class.png")
        plots.append("per_class.png")
    if metrics.get("mean_effect") and metrics.get("graph_signs"):
        plot_effects(metrics, folder / "effects.png")
        plots.append("effects.png")
    (folder / "report.md").write_text(render_markdown(metrics, plots), encoding="utf-8")


def write_report(metrics: dict, out: str | os.PathLike, *, overwrite: bool = False,
                 inputs: Sequence[str | os.PathLike | None] = ()) -> Path:
    """Write the report of :func:`render_report` into folder ``out``, built beside it and swapped in
    (:func:`facr.outputs.output_dir`, kind ``audit``): an existing ``out`` is replaced only when it is an
    earlier facr audit and ``overwrite`` is set, never when it is, holds or lies inside one of ``inputs``."""
    out = Path(out)
    with output_dir(out, "audit", overwrite=overwrite, inputs=inputs) as tmp:
        render_report(metrics, tmp)
    return out
