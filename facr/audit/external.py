"""Auditing other reasoners with facr's yardstick: EmoLA (or any model) from its generations, and a
frozen instruct LLM handed the AU evidence as text.

Both are scored by the one yardstick facr's invoked AUs are scored by
(:func:`facr.audit.metrics.score_explanations`): the AUs a text names (read by the one parser,
:func:`facr.au.extract`, each AU once) against Pa(stated emotion) and Pa(label) of the graph
(**graph-causal agreement**, ``graph_causal_agreement`` / ``graph_causal_agreement_label``) and
against the AUs labelled present, over the AUs the labels code (**active-AU precision / recall**),
with AUs named per frame, the outputs that name none, emotion accuracy where the emotion question
was answered, per class (the stated emotion, else the label) and per subject, and subject-level
bootstrap CIs. The **signed** agreement needs a do() effect on a class score; neither reasoner has
one, so it is ``null`` with the reason (``signed_agreement_note``), never a number.

* ``emola`` (``--generations FILE.jsonl``; :mod:`facr.external.generations`): there is no handle
  on EmoLA's internals to intervene on, so its counterfactual figures are reported as undefined
  (``null``) with the reason, never as a number.
* ``frozen-llm``: the **simulatability** test. The LLM sees the active AUs (the reasoner's z ≥ ½,
  or the labels), states an emotion and names AUs; one AU is removed from the evidence and the LLM
  asked again. The paper's figures, against G: removing a parent of the stated emotion changes it
  (**simulatability sensitivity**), removing a non-parent does not (**simulatability invariance**).
  Against its own answer (**self-simulatability**): a removed *named* AU is no longer named
  (sensitivity; 1 by construction for a model that names only AUs of its evidence), removing an
  *unnamed* AU leaves the stated emotion (invariance; *strict*: the named set too). Every query of
  a round goes through one batched call of the backend.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from facr import au as au_vocab
from facr.au import named as read_named  # the AUs a free text names (facr.cli and the tests read it here)
from facr.audit.auditors import (
    AuditRequest,
    AuditResult,
    _json_safe,
    load_audit_records,
    options_of,
    register_auditor,
)
from facr.audit.metrics import (
    SET_KEYS,
    Explanation,
    mean_defined,
    parents_from_graph,
    pooled_ratio,
    score_explanations,
)
from facr.audit.options import EmolaOptions, FrozenLLMOptions
from facr.data.records import EMOTIONS
from facr.errors import FacrError

NAMED_KEYS = ("n_samples", "n_no_au_named", *SET_KEYS, "aus_per_frame", "emotion_accuracy")
NAMED_CI_KEYS = (*SET_KEYS, "emotion_accuracy")
NO_INTERVENTION = ("EmoLA exposes no handle on an AU latent to intervene on: counterfactual sensitivity and "
                   "invariance are undefined for it (null), not zero")
SIGNED_NOTE = {
    "emola": "a named parent counts in the signed agreement only if its do(z_k = 0) moved the class score the way "
             "its edge says; EmoLA has no latent to intervene on, so the signed figures are undefined (null), "
             "not zero",
    "frozen-llm": "a named parent counts in the signed agreement only if its do(z_k = 0) moved the class score the "
                  "way its edge says; a frozen LLM states an emotion, not a score, so removing an AU from its "
                  "evidence (the simulatability test) gives no signed effect: the signed figures are undefined "
                  "(null), not zero",
}


@dataclass
class NamedSample(Explanation):
    """What a text-only reasoner said about one face (``named``: the AUs the text names, in order of
    mention; ``stated``: None when it states no emotion or was not asked), with the face's labels
    and where it came from. ``effect`` stays None: there is nothing to intervene on."""

    key: str = ""
    subject: str = ""
    asked_emotion: bool = True
    text: str = ""

    @property
    def group(self) -> str | None:
        """The per-class row it counts in: the stated emotion (as FACR's predicted class), else the label."""
        return self.stated or self.label


def _labels_of(record) -> tuple[str | None, set[str] | None, set[str] | None]:
    coded = {a for a, v in record.au_presence.items() if v is not None}
    return record.emotion, (set(record.active_aus()) if coded else None), (coded or None)


def summarize_named(samples: list[NamedSample], graph, *, ci: bool = True, seed: int = 0,
                    n_resamples: int = 2000) -> dict:
    """The figures of named AUs (overall, per class, per subject, bootstrap CIs over subjects),
    scored by the one yardstick (:func:`facr.audit.metrics.score_explanations`)."""
    if not samples:
        raise FacrError(None, "nothing to audit: no sample")
    # a random pick draws from every AU the graph or the labels know
    universe = set(graph.aus).union(*(s.coded for s in samples if s.coded))
    sets = score_explanations(samples, parents_from_graph(graph), n_universe=len(universe))
    correct = [None if not (s.asked_emotion and s.label) else float(s.stated == s.label) for s in samples]

    def summary(idx) -> dict:
        return {
            "n_samples": len(idx),
            "n_no_au_named": int(sum(sets.n_named[i] == 0 for i in idx)),
            **sets.summary(idx),
            "emotion_accuracy": mean_defined([correct[i] for i in idx]),
        }

    everything = list(range(len(samples)))
    out = summary(everything)
    out["no_au_named_rate"] = out["n_no_au_named"] / len(samples)
    asked = [s for s in samples if s.asked_emotion]
    out["emotion_answered_rate"] = (sum(s.stated is not None for s in asked) / len(asked)) if asked else None
    out["named_outside_coded_per_frame"] = float(np.mean([len(set(s.named) - s.coded) if s.coded is not None else 0
                                                          for s in samples]))
    out["chance"] = sets.chance_summary()
    counts: dict[str, int] = {}
    for s in samples:
        for a in s.named:
            counts[a] = counts.get(a, 0) + 1
    out["named_frequency"] = {a: counts[a] / len(samples) for a in au_vocab.sort_aus(counts)}
    classes = list(graph.classes) + sorted({s.group for s in samples if s.group and s.group not in graph.classes})
    per_class = {}
    for c in classes:
        idx = [i for i, s in enumerate(samples) if s.group == c]
        if not idx:
            continue
        row = summary(idx)
        row["n_stated"] = sum(samples[i].stated == c for i in idx)
        row["n_labelled"] = sum(samples[i].label == c for i in idx)
        row["in_graph"] = c in graph.classes
        per_class[c] = row
    out["per_class"] = per_class
    units = sorted({s.subject for s in samples})
    unit_idx = {u: [i for i, s in enumerate(samples) if s.subject == u] for u in units}
    out["per_subject"] = {u: summary(idx) for u, idx in unit_idx.items()}
    out["n_subjects"] = len(units)
    if ci:
        from facr.audit.stats import cluster_bootstrap_ratio

        values = {**sets.values, "emotion_accuracy": correct}
        out["ci95"] = {}
        for key in NAMED_CI_KEYS:
            v = values[key]
            num = [sum(v[i] for i in idx if v[i] is not None) for idx in unit_idx.values()]
            den = [sum(v[i] is not None for i in idx) for idx in unit_idx.values()]
            out["ci95"][key] = (cluster_bootstrap_ratio(num, den, n_resamples=n_resamples, seed=seed)
                                if out[key] is not None else None)
    return out


def _audit_graph(request: AuditRequest):
    from facr.audit.auditors import resolve_audit_graph
    from facr.graph import resolve_graph

    return resolve_audit_graph(request.graph, None, request.data) if request.graph not in (None, "own") \
        else resolve_graph("emfacs")


def _examples(samples: list[NamedSample], n: int = 4) -> list[dict]:
    return [{"image": s.key, "label": s.label, "stated": s.stated, "named": s.named, "text": s.text[:400]}
            for s in samples[:n]]


# ------------------------------------------------------------------ EmoLA (from generations)
def join_generations(gens, request: AuditRequest, source: str):
    """(generation, record or None) pairs of the generations file ``source``: lines with labels stand
    alone; the others must match a record of ``--data`` (:func:`facr.external.generations.record_key`).
    Returns the pairs and the number of lines that matched nothing (without labels)."""
    from facr.external.generations import normalise_key, record_key

    if request.data is None:
        unlabelled = [g for g in gens if not g.labelled]
        if unlabelled:
            g = unlabelled[0]
            raise FacrError(f"{source}:{g.line}",
                            "this line has no labels (\"emotion\" / \"aus\"): pass --data to join it with a dataset")
        return [(g, None) for g in gens], 0
    records = load_audit_records(AuditRequest(**{**request.__dict__, "limit": None}))
    by_key = {record_key(r, request.data): r for r in records}
    pairs, unmatched = [], 0
    for g in gens:
        r = by_key.get(normalise_key(g.image, request.data))
        if r is None and not g.labelled:
            unmatched += 1
            continue
        pairs.append((g, r))
    if not pairs:
        example = next(iter(by_key), "?")
        raise FacrError(source,
                        f"no line's image matches a selected record of {request.data} "
                        f"(split {request.split or 'all'}; first line: {gens[0].image!r}; "
                        f"record keys look like {example!r})")
    return pairs, unmatched


@register_auditor("emola", help="EmoLA (or any model) from a generations JSONL: --generations FILE [--data D]",
                  options=EmolaOptions)
def audit_emola(request: AuditRequest) -> AuditResult:
    """Score a generations file (EmoLA's answers) with facr's set metrics."""
    from facr.external.generations import extract_emotion, read_generations

    options = options_of(request, EmolaOptions)
    path = options.generations
    if not path:
        raise FacrError("emola", "--generations FILE.jsonl is required (facr emola generate writes one)")
    gens = read_generations(path)
    pairs, unmatched = join_generations(gens, request, path)
    if request.limit is not None:
        pairs = pairs[: request.limit]
    graph = _audit_graph(request)
    candidates = list(dict.fromkeys([*graph.classes, *EMOTIONS]))
    samples = []
    for g, r in pairs:
        label, active, coded = _labels_of(r) if r is not None else (None, None, None)
        if g.emotion is not None:
            label = g.emotion
        if g.aus is not None:
            active = set(g.aus)
        stated = extract_emotion(g.emotion_output, candidates) if g.emotion_output is not None else None
        key = g.image
        samples.append(NamedSample(read_named(g.output), stated, label, active, coded, key=key,
                                   subject=str(r.subject) if r is not None else key,
                                   asked_emotion=g.emotion_output is not None, text=g.output or ""))
    m = summarize_named(samples, graph, ci=request.ci, seed=request.seed)
    sources = sorted({str(g.extra.get("source")) for g, _ in pairs if g.extra.get("source")})
    m.update({
        "model": "emola", "model_kind": "generations", "generations": str(path), "sources": sources,
        "data": request.data, "split": request.split or "all", "graph": graph.name,
        "n_lines": len(gens), "n_unmatched_lines": unmatched,
        "n_au_answers": sum(g.output is not None for g, _ in pairs),
        "cf_sensitivity": None, "cf_invariance": None, "intervention": None, "intervention_note": NO_INTERVENTION,
        "signed_agreement_note": SIGNED_NOTE["emola"], "examples": _examples(samples),
    })
    if options.pixel_cf or any("occlusions" in g.extra for g, _ in pairs):
        from facr.audit.pixel import occluded_answer_figures

        # the answers on occluded faces (facr emola generate --pixel-cf): an intervention on the image
        m.update(occluded_answer_figures([g for g, _ in pairs], candidates, str(path)))
    if unmatched:
        print(f"facr audit: {unmatched} line(s) of {path} match no selected record of {request.data} "
              f"(split {request.split or 'all'}) and carry no labels: left out", file=sys.stderr)
    return AuditResult("emola", _json_safe(m))


# ------------------------------------------------------------------ a frozen instruct LLM
FROZEN_SYSTEM = "You are an expert in the Facial Action Coding System (FACS)."


def frozen_prompt(evidence: list[str], classes: list[str]) -> list[dict]:
    """The conversation that hands the LLM the AU evidence (ids with FACS names) and asks for an
    emotion among ``classes`` and the AUs that show it."""
    listed = ", ".join(f"{a} ({au_vocab.info(a).name})" for a in evidence) if evidence else "none"
    user = (f"Facial action units present: {listed}.\nWhich emotion is this ({', '.join(classes)})? "
            "Which of the action units listed above show it?")
    return [{"role": "system", "content": FROZEN_SYSTEM}, {"role": "user", "content": user}]


def make_chat(options: FrozenLLMOptions):
    """The backend ``options`` name: ``llm_url`` (an OpenAI-compatible endpoint) or ``llm`` (a local
    model: a registry name or a folder)."""
    from facr.external.llm import EndpointChat, LocalChat

    if options.llm_url:
        return EndpointChat(options.llm_url, model=options.llm_model, max_new_tokens=options.max_new_tokens,
                            workers=options.workers)
    return LocalChat(options.llm, max_new_tokens=options.max_new_tokens, batch_size=options.generate_batch_size,
                     load_in_4bit=options.load_in_4bit)


@dataclass
class Evidence:
    """The faces of a frozen-LLM audit: per face its evidence (active AUs) and labels."""

    keys: list[str]
    subjects: list[str]
    evidence: list[list[str]]
    labels: list[tuple[str | None, set[str] | None, set[str] | None]]
    classes: list[str]
    source: str


def collect_evidence(request: AuditRequest, graph, options: FrozenLLMOptions) -> Evidence:
    """Active AUs per face: the reasoner's (z ≥ ½; ``options.reasoner``) or the labels'."""
    from facr.external.generations import record_key

    reasoner = options.reasoner
    kind = options.evidence or ("reasoner" if reasoner else "labels")
    if kind == "reasoner":
        from facr.audit.auditors import run_reasoner_pass

        if not reasoner:
            raise FacrError("--evidence",
                            "reasoner evidence needs --reasoner RUN (a facr reasoner checkpoint or run folder)")
        run = run_reasoner_pass(AuditRequest(**{**request.__dict__, "model": reasoner, "options": {}}))
        ev, records = run.evaluation, run.dataset.records
        evidence = [ev.seen(i, list(ev.aus)) for i in range(len(records))]
        classes = list(ev.classes)
        source = f"the reasoner's active AUs (z >= 1/2) of {reasoner}"
    else:
        records = load_audit_records(request)
        evidence = [r.active_aus() for r in records]
        if not any(any(v is not None for v in r.au_presence.values()) for r in records):
            raise FacrError(request.data, "no selected record codes any AU: label evidence needs AU labels "
                                          "(or pass --reasoner to use a reasoner's active AUs)")
        labelled = {r.emotion for r in records if r.emotion}
        classes = [c for c in [*EMOTIONS, *graph.classes] if c in graph.classes or c in labelled]
        classes = list(dict.fromkeys(classes))
        source = "the AU labels of the data"
    return Evidence([record_key(r, request.data) for r in records], [str(r.subject) for r in records], evidence,
                    [_labels_of(r) for r in records], classes, source)


# Against G (the paper's simulatability): removing a parent of the stated emotion should change the
# answer, removing a non-parent should not. Against its own answer (self-simulatability): a removed
# named AU should no longer be named, removing an unnamed one should leave the emotion (strict: and
# the named set).
SIMULATABILITY_KEYS = ("simulatability_sensitivity", "simulatability_invariance", "self_simulatability_sensitivity",
                       "self_simulatability_invariance", "self_simulatability_invariance_strict",
                       "emotion_change_on_named_removal")


def _count_removals(removals, parsed, factual, parents, n_faces: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{key: (hits, pairs)}`` per face over every removal ``(face, au, named?, query)``, from the
    parsed answers (stated emotion, named AUs) of the factual and the removal queries."""
    counts = {k: (np.zeros(n_faces), np.zeros(n_faces)) for k in SIMULATABILITY_KEYS}

    def count(key: str, b: int, hit: bool) -> None:
        counts[key][0][b] += hit
        counts[key][1][b] += 1

    for b, a, was_named, q in removals:
        stated0, named0 = parsed[factual[b]]
        stated1, named1 = parsed[q]
        if parents.get(stated0):
            if a in parents[stated0]:
                count("simulatability_sensitivity", b, stated1 != stated0)
            else:
                count("simulatability_invariance", b, stated1 == stated0)
        if was_named:
            count("self_simulatability_sensitivity", b, a not in named1)
            count("emotion_change_on_named_removal", b, stated1 != stated0)
        else:
            count("self_simulatability_invariance", b, stated1 == stated0)
            count("self_simulatability_invariance_strict", b, stated1 == stated0 and set(named1) == set(named0))
    return counts



@register_auditor("frozen-llm", help="a frozen instruct LLM handed the AU evidence as text (simulatability): "
                                     "--llm NAME|PATH or --llm-url URL; --evidence labels|reasoner",
                  options=FrozenLLMOptions)
def audit_frozen_llm(request: AuditRequest) -> AuditResult:
    """The simulatability audit of a frozen LLM reasoner."""
    from facr.external.generations import extract_emotion

    options = options_of(request, FrozenLLMOptions)
    if options.pixel_cf:
        raise FacrError("--pixel-cf", "a frozen LLM reads AU evidence as text, not a face: there are no pixels to "
                                      "intervene on (audit a reasoner, or EmoLA / VLM generations)")

    graph = _audit_graph(request)
    faces = collect_evidence(request, graph, options)
    if not faces.keys:
        raise FacrError(request.data, "no record selected")
    chat = make_chat(options)
    prompts: dict[tuple[str, ...], int] = {}  # greedy answers depend only on the evidence: ask once

    def ask(evidence) -> int:
        return prompts.setdefault(tuple(evidence), len(prompts))

    answers: list[str] = []
    parsed: list[tuple[str | None, list[str]]] = []  # (stated emotion, named AUs) per query

    def answer_new() -> None:
        """Ask every query not answered yet (one backend call), in query order."""
        new = list(prompts)[len(answers):]
        texts = chat([frozen_prompt(list(e), faces.classes) for e in new], progress=request.progress) if new else []
        answers.extend(texts)
        parsed.extend((extract_emotion(t, faces.classes), read_named(t)) for t in texts)

    factual = [ask(e) for e in faces.evidence]
    answer_new()
    # Second round: every removal of one evidence AU, named ones (sensitivity) and unnamed (invariance).
    removals = []  # (face, au, named?, query)
    for b, e in enumerate(faces.evidence):
        named = set(parsed[factual[b]][1])
        for a in e:
            removals.append((b, a, a in named, ask([x for x in e if x != a])))
    answer_new()
    N = len(faces.keys)
    keys = SIMULATABILITY_KEYS
    counts = _count_removals(removals, parsed, factual, parents_from_graph(graph), N)
    samples = [NamedSample(parsed[factual[b]][1], parsed[factual[b]][0], *faces.labels[b], key=faces.keys[b],
                           subject=faces.subjects[b], asked_emotion=True, text=answers[factual[b]]) for b in range(N)]
    m = summarize_named(samples, graph, ci=request.ci, seed=request.seed)
    m.update({key: pooled_ratio(*counts[key]) for key in keys})
    m.update({
        "n_sensitivity_pairs": int(counts["simulatability_sensitivity"][1].sum()),
        "n_invariance_pairs": int(counts["simulatability_invariance"][1].sum()),
        "n_self_sensitivity_pairs": int(counts["self_simulatability_sensitivity"][1].sum()),
        "n_self_invariance_pairs": int(counts["self_simulatability_invariance"][1].sum()),
        "named_outside_evidence_per_frame": float(np.mean([len(set(s.named) - set(e))
                                                           for s, e in zip(samples, faces.evidence)])),
        "evidence_per_frame": float(np.mean([len(e) for e in faces.evidence])),
        "n_queries": len(prompts),
    })
    subjects = np.array(faces.subjects, dtype=object)
    unit_of = {u: subjects == u for u in m["per_subject"]}  # the units summarize_named reported
    with_ci = keys[:4]
    for u, sel in unit_of.items():
        m["per_subject"][u].update({key: pooled_ratio(counts[key][0][sel], counts[key][1][sel]) for key in with_ci})
    if request.ci:
        from facr.audit.stats import cluster_bootstrap_ratio

        for key in with_ci:
            num, den = counts[key]
            m["ci95"][key] = cluster_bootstrap_ratio([num[i].sum() for i in unit_of.values()],
                                                     [den[i].sum() for i in unit_of.values()],
                                                     seed=request.seed) if m[key] is not None else None
    m.update({
        "model": "frozen-llm", "model_kind": "frozen-llm", "llm": chat.describe(), "evidence": faces.source,
        "classes": faces.classes, "data": request.data, "split": request.split or "all", "graph": graph.name,
        "prompt": frozen_prompt(["AU6", "AU12"], faces.classes),
        "cf_sensitivity": None, "cf_invariance": None,
        "intervention": "remove one AU from the evidence text and ask again (simulatability)",
        "signed_agreement_note": SIGNED_NOTE["frozen-llm"], "examples": _examples(samples),
    })
    return AuditResult("frozen-llm", _json_safe(m))

