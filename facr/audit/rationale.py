"""The rationale audit: intervene on z, regenerate the text, and read which AUs it names.

For each audited face with latent z and stated emotion ĉ (the head's argmax) the verbalizer
writes one rationale from z and one from every do(z_k = 0), whose stated emotion is the head's
argmax under that intervention (the full system's counterfactual). All K + 1 rationales of a face,
and those of several faces, go through one ``generate`` call. The AUs a text names are read by the
one parser, :func:`facr.au.extract`. Against a graph G (the reasoner's own by default):

* **rationale sensitivity** — over the causal interventions (k ∈ Pa(ĉ)), the fraction where AU k
  is named in the factual rationale and absent from the regenerated one (paper §4.5; an AU that
  was never named cannot be dropped, which bounds this figure); its **ceiling** is the share of
  causal interventions whose AU is in the factual target T (what a verbalizer naming exactly T
  reaches), and **nameable** the same figure over the causal AUs the latent shows (z_k ≥ ½);
* **ablated-AU drop rate** — over every intervention on an AU the factual rationale names, the
  fraction whose regenerated text drops it (the paper's "a free verbalizer removes the ablated AU
  only 6% of the time");
* **rationale invariance** — over the irrelevant interventions (k ∉ Pa(ĉ)) of faces whose factual
  rationale names at least one causal AU, the fraction that leave the rationale's causal AUs
  (named ∩ Pa(ĉ)) in place (paper §4.5); **strict**: the whole named set, apart from AU k itself,
  unchanged. A face whose rationale names no causal AU has nothing to keep in place: its pairs
  are counted apart (``n_invariance_pairs_vacuous``), never as invariant, so a verbalizer that
  names nothing scores ``None``, not 1.0;
* **named inactive** — how many named AUs had z_k < ½ in the latent the text was written from
  (every rationale, factual and counterfactual; bare numbers in an AU list, "AU6, 1 and 2",
  count): 0 whenever the hard gate is on;
* **well-formed rate** — the share of factual rationales with no problem under
  :func:`facr.verbalizer.wellformed.check_rationale` against the face's target T and ĉ;
* coverage: ``empty_rationale_rate``, the rationales that name no AU although their target T has
  AUs to name (or have no text); ``no_au_named_rate`` all that name no AU, ``empty_target_rate`` the
  faces whose T is empty (nothing invoked is shown: "no action unit of it is visible ..."); AUs per
  rationale, the share naming exactly the training target (invoked ∩ active), and the factual named
  set scored by the one yardstick every reasoner is scored by
  (:func:`facr.audit.metrics.score_explanations`): graph-causal agreement against Pa(ĉ) and Pa(y),
  unsigned and signed (the signed one reads the reasoner's own do() effects on the face), PSPI
  agreement, active-AU precision / recall over the coded AUs.

* **fluency** — the mean per-token negative log-likelihood of the factual rationales under the
  frozen backbone alone (no soft prompt), beside that of the fixed template
  (:data:`facr.verbalizer.plan.TEMPLATE`) naming the same AUs for the same emotion.

Each mode (``gated``: the plan realised, ``soft``: the paper's finite-β gate, ``ungated``: free) is
a separate pass over the same rows; every row carries its plan (:class:`RationalePlan`: the
invoked AUs its latent shows, largest effect first, the stated emotion and its probability).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from facr import au as au_vocab
from facr.audit import RATIONALE_DEFAULT_LIMIT
from facr.audit.auditors import (
    AuditRequest,
    AuditResult,
    _json_safe,
    options_of,
    register_auditor,
    run_reasoner_pass,
)
from facr.audit.metrics import (
    SET_KEYS,
    Explanation,
    invoked_aus,
    parents_from_signs,
    pooled_ratio,
    score_explanations,
)
from facr.audit.options import ReasonerOptions, VerbalizerOptions
from facr.audit.stats import cluster_bootstrap_ratio
from facr.causal import intervene_all, intervention_effects
from facr.errors import FacrError
from facr.utils import loads_json

RATIONALE_KEYS = ("n_samples", "rationale_sensitivity", "rationale_sensitivity_ceiling",
                  "rationale_sensitivity_nameable", "rationale_invariance", "rationale_invariance_strict",
                  "n_sensitivity_pairs", "n_sensitivity_pairs_nameable", "n_invariance_pairs",
                  "n_invariance_pairs_vacuous", "ablated_au_drop_rate", "named_inactive", "empty_rationale_rate",
                  "no_au_named_rate", "empty_target_rate",
                  "well_formed_rate", "aus_per_rationale", "named_equals_target", "fluency_nll", "template_nll",
                  "fluency_vs_template", *SET_KEYS, "aus_per_frame")


@dataclass
class RationaleRows:
    """The generation requests of an audit, factual first then do(z_k = 0) for k = 0..K-1, per face:
    row ``r`` belongs to face ``face[r]`` and intervenes on AU ``au[r]`` (−1: factual)."""

    z: torch.Tensor  # [R, K]
    emotions: list[str]
    allowed: torch.Tensor  # [R, K] bool: the invoked AUs under this row's z
    face: np.ndarray  # [R]
    au: np.ndarray  # [R]
    plans: list | None = None  # [R] RationalePlan: what the gated mode says for the row

    def targets(self) -> list[set[str]]:
        """The target set T of every face's factual row (what its rationale should name)."""
        return [set(self.plans[r].aus) for r in np.flatnonzero(self.au < 0)]

    def __len__(self) -> int:
        return len(self.emotions)


@torch.no_grad()
def intervention_rows(head, z: torch.Tensor, classes: list[str], own_signs: torch.Tensor,
                      aus: list[str] | None = None) -> RationaleRows:
    """Every face's factual row and its K do(z_k = 0) rows, each with the emotion the head states for
    it, the AUs it invokes for that emotion under the reasoner's own graph (top-|Pa(ĉ)| by effect)
    and its plan (those of them the row's latent shows, z ≥ ½, largest effect first, those with
    Δ_kĉ < 0 marked against ĉ; ĉ and p(ĉ)).
    ``aus`` names the AUs in the plans (default: the first K FACS AUs, for a bare head)."""
    from facr.verbalizer.plan import RationalePlan

    N, K = z.shape
    grid = intervene_all(z.float()).reshape(N * (K + 1), K)
    eff = intervention_effects(head, grid)
    pred = eff.logits.argmax(dim=1)
    invoked = invoked_aus(eff, own_signs.to(torch.int8), pred)
    allowed = torch.zeros(len(grid), K, dtype=torch.bool)
    for r, idx in enumerate(invoked):
        allowed[r, idx] = True
    names = list(aus) if aus is not None else [f"AU{n}" for n in sorted(au_vocab.AUS)[:K]]
    prob = torch.softmax(eff.logits.float(), dim=1).gather(1, pred[:, None]).squeeze(1).tolist()
    z_rows, delta = grid.cpu().tolist(), eff.for_class(pred).cpu().tolist()
    plans = [RationalePlan.for_face([names[k] for k in idx], dict(zip(names, z_rows[r])), dict(zip(names, delta[r])),
                                    classes[int(pred[r])], round(float(prob[r]), 2))
             for r, idx in enumerate(invoked)]
    face = np.repeat(np.arange(N), K + 1)
    au = np.tile(np.arange(-1, K), N)
    return RationaleRows(grid.cpu(), [classes[int(p)] for p in pred], allowed, face, au, plans)


def generate_rows(verbalizer, rows: RationaleRows, mode: str, batch_size: int = 64,
                  progress: bool = False) -> list[str]:
    """The rationale of every row, ``batch_size`` rows per ``generate`` call (1: one call per row, the
    reference the benchmark compares with). Rows are grouped by stated emotion so a batch's
    instructions share a length and need no padding; the texts come back in row order."""
    from tqdm.auto import tqdm

    order = sorted(range(len(rows)), key=lambda r: (rows.emotions[r], r))
    texts: list[str] = [""] * len(rows)
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for chunk in tqdm(chunks, desc=f"rationales ({mode})", unit="batch", disable=not progress, dynamic_ncols=True):
        idx = torch.as_tensor(chunk)
        out = verbalizer.generate(rows.z[idx], [rows.emotions[r] for r in chunk], mode=mode,
                                  plans=None if rows.plans is None else [rows.plans[r] for r in chunk])
        for r, t in zip(chunk, out):
            texts[r] = t
    return texts


def score_rationales(texts: list[str], rows: RationaleRows, aus: list[str], classes: list[str], signs: np.ndarray,
                     targets: list[set[str]], faces: list[Explanation], subjects: np.ndarray,
                     ci: bool = True, seed: int = 0) -> dict:
    """The rationale figures (module docstring) of one mode's texts; ``signs`` [K, C] is the graph
    scored against, ``targets[n]`` the AUs face n's training target names (invoked ∩ active),
    ``faces[n]`` face n's label, coded and active AUs and the reasoner's do() effects
    (:meth:`facr.audit.evaluate.Evaluation.explanations`; what it names is read from the text)."""
    from facr.verbalizer.model import Verbalizer
    from facr.verbalizer.wellformed import check_rationale

    K = len(aus)
    N = len(targets)
    named = [set(Verbalizer.named_aus(t)) for t in texts]
    known = set(aus)
    z = rows.z.numpy()
    named_inactive = sum(1 for r, s in enumerate(named) for a in s
                         if a in known and z[r, aus.index(a)] < au_vocab.ACTIVE)
    named_unknown = sum(len(s - known) for s in named)
    classes_of = rows.emotions
    signed_parents = parents_from_signs(signs, aus, classes)
    parents_of = {c: set(pa) for c, pa in signed_parents.items()}
    sens = np.zeros((N, 2))
    ceiling = np.zeros((N, 2))
    nameable = np.zeros((N, 2))
    inv = np.zeros((N, 2))
    vacuous = np.zeros(N)
    problems = []
    inv_strict = np.zeros((N, 2))
    drop = np.zeros((N, 2))
    examples = []
    factual_rows = np.flatnonzero(rows.au < 0)
    for n, r0 in enumerate(factual_rows):
        base = named[r0]
        parents = parents_of[classes_of[r0]]
        problems.append(check_rationale(texts[r0], targets[n], classes_of[r0]))
        for k in range(K):
            r = r0 + 1 + k
            a, after = aus[k], named[r]
            if a in base:
                drop[n] += (a not in after, 1)
            if a in parents:
                hit = a in base and a not in after
                sens[n] += (hit, 1)
                ceiling[n] += (a in targets[n], 1)
                if z[r0, k] >= au_vocab.ACTIVE:
                    nameable[n] += (hit, 1)
            elif not base & parents:  # nothing causal named: nothing to keep in place, not invariant
                vacuous[n] += 1
            else:
                inv[n] += ((after & parents) == (base & parents), 1)
                inv_strict[n] += ((after - {a}) == (base - {a}), 1)
        dropped = next((k for k in range(K) if aus[k] in base and aus[k] in parents), None)
        if len(examples) < 6 and dropped is not None:
            examples.append(_example(texts, named, classes_of, r0, aus[dropped], r0 + 1 + dropped))
    base_named = [named[r] for r in factual_rows]
    # the factual text, stating the head's emotion ĉ, scored as every reasoner's named AUs are
    sets = score_explanations([replace(face, named=base_named[n], stated=classes_of[r])
                               for n, (face, r) in enumerate(zip(faces, factual_rows))],
                              signed_parents, n_universe=K)
    out = {
        "n_samples": N,
        "n_rationales": len(texts),
        "rationale_sensitivity": _ratio(sens),
        "rationale_sensitivity_ceiling": _ratio(ceiling),
        "rationale_sensitivity_nameable": _ratio(nameable),
        "rationale_invariance": _ratio(inv),
        "rationale_invariance_strict": _ratio(inv_strict),
        "ablated_au_drop_rate": _ratio(drop),
        "n_sensitivity_pairs": int(sens[:, 1].sum()),
        "n_sensitivity_pairs_nameable": int(nameable[:, 1].sum()),
        "n_invariance_pairs": int(inv[:, 1].sum()),
        "n_invariance_pairs_vacuous": int(vacuous.sum()),
        "pairs": {"causal": int(sens[:, 1].sum()), "causal_nameable": int(nameable[:, 1].sum()),
                  "irrelevant": int(inv[:, 1].sum()), "irrelevant_vacuous": int(vacuous.sum()),
                  "named_then_ablated": int(drop[:, 1].sum())},
        "well_formed_rate": float(np.mean([not p for p in problems])) if N else None,
        "well_formed_problems": dict(sorted(Counter(p.split(":")[0] for ps in problems for p in ps).items())),
        "named_inactive": int(named_inactive),
        "named_outside_aus": int(named_unknown),
        # a rationale that names nothing although its target T has AUs to name (or no text at all); one
        # whose T is empty and says so is not empty: no_au_named_rate and empty_target_rate tell them apart
        "empty_rationale_rate": float(np.mean([(not s and bool(t)) or not texts[r].strip()
                                               for s, t, r in zip(base_named, targets, factual_rows)])) if N else None,
        "no_au_named_rate": float(np.mean([not s for s in base_named])) if N else None,
        "empty_target_rate": float(np.mean([not t for t in targets])) if N else None,
        "aus_per_rationale": float(np.mean([len(s) for s in base_named])) if N else None,
        "named_equals_target": float(np.mean([s == t for s, t in zip(base_named, targets)])) if N else None,
        **sets.summary(),
        "chance": sets.chance_summary(),
        "examples": examples,
    }
    if ci:
        parts = {key: np.stack(sets.ratio_parts(key), axis=1) for key in SET_KEYS}
        parts.update({"rationale_sensitivity": sens, "rationale_sensitivity_nameable": nameable,
                      "rationale_invariance": inv, "rationale_invariance_strict": inv_strict,
                      "ablated_au_drop_rate": drop,
                      "well_formed_rate": np.array([(not p, 1) for p in problems], dtype=float).reshape(-1, 2)})
        out["ci95"] = _ci95(parts, out, subjects, seed)
    return out


def _ratio(counts: np.ndarray) -> float | None:
    """Pooled hits / pairs of ``counts`` [n, 2] (None without a pair)."""
    return pooled_ratio(counts[:, 0], counts[:, 1])


def _example(texts: list[str], named: list[set[str]], emotions: list[str], r0: int, au: str, r: int) -> dict:
    """A factual rationale (row ``r0``) beside the one under do(``au`` = 0) (row ``r``), for the report."""
    return {"emotion": emotions[r0], "rationale": texts[r0], "named": sorted(named[r0]),
            "intervention": f"do({au} = 0)", "emotion_after": emotions[r], "rationale_after": texts[r],
            "named_after": sorted(named[r])}


def _ci95(parts: dict[str, np.ndarray], out: dict, subjects: np.ndarray, seed: int) -> dict:
    """Subject-cluster bootstrap 95 % CIs of each figure from its per-face [hits, pairs] ``parts``."""
    units = sorted(set(subjects.tolist()))
    by = {u: np.flatnonzero(subjects == u) for u in units}
    return {key: cluster_bootstrap_ratio([arr[by[u], 0].sum() for u in units],
                                         [arr[by[u], 1].sum() for u in units], seed=seed)
            if out[key] is not None else None for key, arr in parts.items()}


def fluency(nll: list[float | None], template_nll: list[float | None]) -> dict:
    """Mean per-token NLL of the rationales (empty ones left out) and of the template on the same faces."""
    pairs = [(a, b) for a, b in zip(nll, template_nll) if a is not None and b is not None]
    if not pairs:
        return {"fluency_nll": None, "template_nll": None, "fluency_vs_template": None, "n_fluency": 0}
    mine, tmpl = float(np.mean([a for a, _ in pairs])), float(np.mean([b for _, b in pairs]))
    return {"fluency_nll": mine, "template_nll": tmpl, "fluency_vs_template": mine - tmpl, "n_fluency": len(pairs),
            "fluency_beats_template_rate": float(np.mean([a <= b for a, b in pairs]))}


# ------------------------------------------------------------------ the auditor
def verbalizer_folder(path: str) -> Path | None:
    """The checkpoint folder of a verbalizer (the folder itself, or ``verbalizer/`` in a run folder)."""
    from facr.verbalizer.model import VERBALIZER_FILES

    p = Path(path)
    for cand in (p, p / "verbalizer"):
        if all((cand / f).exists() for f in VERBALIZER_FILES):
            return cand
    return None


def verbalizer_reasoner(folder: Path, override: str | None = None) -> str:
    """The reasoner a verbalizer was trained on: ``override``, else its config's ``reasoner`` — as
    written (relative to the working directory) or relative to the checkpoint folder."""
    if override:
        return override
    try:
        recorded = loads_json((folder / "config.json").read_text(encoding="utf-8")).get("reasoner")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if not recorded:
        raise FacrError(folder / "config.json", "names no reasoner: pass --reasoner")
    for cand in (Path(recorded), folder / recorded):
        if cand.exists():
            return str(cand)
    raise FacrError(folder / "config.json", f"its reasoner {recorded} is not here: pass --reasoner")


def _modes(request: AuditRequest, asked: list[str] | None, default: str) -> list[str]:
    from facr.verbalizer.model import LEGACY_MODES, MODES

    modes = asked or [default, *(m for m in MODES if m != default)]
    modes = [LEGACY_MODES.get(m, m) for m in modes]
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise FacrError(request.model, f"unknown mode {bad[0]!r} (modes: {', '.join(MODES)})")
    return list(dict.fromkeys(modes))


@register_auditor("verbalizer",
                  help="a facr verbalizer checkpoint (facr train verbalizer); --rationale audits its text",
                  recognises=lambda path: verbalizer_folder(path) is not None, options=VerbalizerOptions)
def audit_verbalizer(request: AuditRequest) -> AuditResult:
    """``--rationale``: the rationale audit of the verbalizer (every mode asked for). Without it: the
    latent audit of the reasoner the verbalizer speaks for (with the reasoner's options)."""
    from facr.audit.auditors import audit_reasoner, resolve_audit_graph
    from facr.causal import graph_signs
    from facr.verbalizer.model import load_verbalizer

    folder = verbalizer_folder(request.model)
    if folder is None:
        raise FacrError(request.model, "not a facr verbalizer checkpoint (verbalizer.safetensors + config.json)")
    options = options_of(request, VerbalizerOptions)
    reasoner = verbalizer_reasoner(folder, options.reasoner)
    if not options.rationale:
        latent = {f.name: getattr(options, f.name) for f in fields(ReasonerOptions)}
        result = audit_reasoner(replace(request, model=reasoner, options=latent))
        result.metrics["verbalizer"] = str(folder)
        return result
    if options.maps or options.pixel_cf:
        raise FacrError("--maps" if options.maps else "--pixel-cf",
                        "audits the reasoner's latent; without --rationale a verbalizer gets that audit")
    sub = replace(request, model=reasoner, limit=request.limit or RATIONALE_DEFAULT_LIMIT, oracle=False, options={})
    run = run_reasoner_pass(sub)
    ev, cfg = run.evaluation, run.model.config
    v = load_verbalizer(folder, backbone=options.backbone)
    if list(v.config.aus) != list(cfg.aus) or list(v.config.classes) != list(cfg.classes):
        raise FacrError(folder, f"the verbalizer's AUs / classes do not match the reasoner {reasoner}")
    device = next(v.lm.parameters()).device
    own = graph_signs(run.own_graph, cfg.aus, cfg.classes)
    head = run.model.to("cpu").eval().latent_head()
    rows = intervention_rows(head, torch.from_numpy(ev.z), list(cfg.classes), own, list(cfg.aus))
    graph = resolve_audit_graph(request.graph, run.own_graph, request.data)
    signs = graph_signs(graph, cfg.aus, cfg.classes).numpy()
    targets = rows.targets()  # the training targets: invoked (own graph) ∩ active
    factual = np.flatnonzero(rows.au < 0)
    fact_emotions = [rows.emotions[r] for r in factual]
    template_nll = v.fluency_nll([rows.plans[r].text() for r in factual], fact_emotions)
    faces = ev.explanations()
    batch = options.generate_batch_size
    modes = _modes(request, options.modes, v.config.mode)
    by_mode = {}
    for mode in modes:
        texts = generate_rows(v, rows, mode, batch_size=batch, progress=request.progress)
        by_mode[mode] = score_rationales(texts, rows, list(cfg.aus), list(cfg.classes), signs, targets, faces,
                                         ev.subjects, ci=request.ci, seed=request.seed)
        by_mode[mode].update(fluency(v.fluency_nll([texts[r] for r in factual], fact_emotions), template_nll))
    primary = by_mode[modes[0]]
    m = {k: v_ for k, v_ in primary.items() if k != "examples"}
    m.update({
        "model": str(request.model),
        "model_kind": "verbalizer-rationale",
        "verbalizer": str(folder),
        "backbone": v.config.backbone,
        "reasoner": reasoner,
        "mode": modes[0],
        "modes": by_mode,
        "free_drop_rate": by_mode["ungated"]["ablated_au_drop_rate"] if "ungated" in by_mode else None,
        "model_graph": run.own_graph.name,
        "graph": graph.name,
        "data": str(request.data),
        "split": request.split or "all",
        "skipped_images": run.skipped.to_dict(),
        "classes": list(cfg.classes),
        "aus": list(cfg.aus),
        "device": str(device),
        "intervention": "do(z_k = 0) on the AU latent, every AU; the stated emotion re-predicted by the head; "
                        f"{len(rows)} rationales per mode, {batch} per generate call",
    })
    latent = ev.summarize(signs)
    m["latent"] = {k: latent.get(k) for k in ("accuracy", "macro_f1", "cf_sensitivity", "cf_invariance",
                                              "graph_causal_agreement", "graph_causal_agreement_signed",
                                              "graph_causal_agreement_label")}
    return AuditResult("verbalizer-rationale", _json_safe(m), ev)
