"""One person's conversation about one face: the state and the answers, without any UI.

:class:`ChatSession` holds the face as seen, the reading now shown (after what-ifs) and the graph G
chosen for this conversation; :meth:`ChatSession.ask` answers a question as a stream of growing
Markdown strings (the rationale arrives token by token). The Gradio app only renders these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from facr import au as au_vocab
from facr.au import ACTIVE
from facr.chat.explainer import Explainer, FaceCheck, Reading
from facr.chat.questions import Question, parse_question
from facr.chat.realface import LANDMARK_WORDS, to_picture

EXAMPLES = ["why?", "what if AU12 were absent?", "what if AU4 were at 0.9?", "which AUs matter for sadness?",
            "where is AU12?", "reset"]


def _au(a: str) -> str:
    return f"**{a}** ({au_vocab.info(a).name.lower()})"


def _sign(s: int) -> str:
    return "+" if s > 0 else ("−" if s < 0 else "·")


METHOD_WORDS = {"gradcam": "Grad-CAM", "cefam": "the CE-FAM concept map",
                "rollout": "gradient-weighted attention rollout", "agcm": "the AGCM head's concept attention"}


def _place(down: float, across: float) -> str:
    """A face region in words for a map peak (fractions of the face crop; across is the image's left→right)."""
    row = "forehead / brows" if down < 0.38 else "eyes / cheeks" if down < 0.58 else "nose / upper lip" \
        if down < 0.7 else "mouth" if down < 0.86 else "chin"
    side = "left of the picture" if across < 0.4 else "right of the picture" if across > 0.6 else "centre"
    return f"{row}, {side}"


@dataclass
class ChatSession:
    """The state of one conversation. ``graph``: the G explanations are checked against (swappable)."""

    explainer: Explainer
    graph: object = None
    face: Reading | None = None  # the face as seen
    current: Reading | None = None  # the face under the what-ifs asked so far
    rationale: str | None = None  # the rationale of ``face``
    current_rationale: str | None = None
    note: str = ""
    history: list[dict] = field(default_factory=list)
    pixels: object = None  # the face the model sees, [S, S, 3] uint8
    overlay: object = None  # the last "where is AU k?" answer's overlay (RGB array), for the UI

    def __post_init__(self):
        if self.graph is None:
            self.graph = self.explainer.graph

    # ------------------------------------------------------------------ face and graph
    def see(self, pixels, note: str = "", face=None) -> Reading:
        """A new face: read it, forget the what-ifs and rationales of the last one. ``face``: a front end's
        reading of the face in ``pixels`` (:attr:`facr.chat.face.Face.reading`), so it is not read twice."""
        self.face = self.current = self.explainer.read(pixels, face=face)
        self.pixels, self.overlay = pixels, None
        self.rationale = self.current_rationale = None
        self.note = note
        return self.face

    def set_graph(self, graph) -> None:
        """Use ``graph`` (an AUGraph, already validated) for the checks and parents from now on."""
        self.graph = graph

    def check(self, reading: Reading | None = None, cls: str | None = None) -> FaceCheck:
        return self.explainer.check(reading or self.current, cls, self.graph)

    # ------------------------------------------------------------------ answers
    def ask(self, text: str) -> Iterator[str]:
        """Answer ``text`` about the current face: Markdown, growing; the last item is the whole answer."""
        if self.face is None:
            yield "Give me a face first: upload one, take one with the webcam, or pick one from the gallery."
            return
        q = parse_question(text, self.explainer.aus, self.explainer.classes)
        handler = {"why": self._why, "what_if": self._what_if, "matters": self._matters, "au": self._about_au,
                   "where": self._where, "reset": self._reset}.get(q.kind, self._help)
        yield from handler(q)

    def stream_rationale(self, reading: Reading, prefix: str = "") -> Iterator[tuple[str, str]]:
        """(Markdown so far, rationale so far) while the verbalizer writes the rationale of ``reading``."""
        text = ""
        for text in self.explainer.rationale_stream(reading):
            yield prefix + f"> {text}▌", text
        yield prefix + f"> {text}", text

    def _rationale_of_current(self) -> str:
        """The rationale of the reading now shown (written once, then kept)."""
        if self.rationale is None:
            self.rationale = self.explainer.rationale(self.face)
        if self.current is self.face:
            self.current_rationale = self.rationale
        if self.current_rationale is None:
            self.current_rationale = self.explainer.rationale(self.current)
        return self.current_rationale

    def _why(self, q: Question) -> Iterator[str]:
        r = self.current
        head = f"The reasoner says **{r.predicted}** (p = {r.prob(r.predicted):.2f})"
        head += self._settings_suffix(r) + f".\n\n**Rationale** ({self.explainer.rationale_source}):\n\n"
        if self.current_rationale is None:
            text = ""
            for md, so_far in self.stream_rationale(r, head):
                text = so_far  # the whole rationale once the stream ends
                yield md
            self.current_rationale = text
            if r is self.face:
                self.rationale = text
        text = self.current_rationale
        yield head + f"> {text}\n\n" + self._evidence(r, text)

    def _evidence(self, r: Reading, text: str) -> str:
        chk = self.check(r)
        named = set(Explainer.named(text))
        lines = [f"**What each AU does to {r.predicted}** — Δ = ŷ − ŷ under do(z_k = 0), G = `{chk.graph}`, "
                 f"ε = {chk.epsilon:g}:", "", "| AU | z | Δ | G | named | check |", "|---|---|---|---|---|---|"]
        rows = sorted(chk.rows, key=lambda row: -abs(row.delta))
        shown = [row for row in rows if row.sign or row.z >= ACTIVE or abs(row.delta) > chk.epsilon][:10]
        for row in shown:
            lines.append(f"| {row.au} {au_vocab.info(row.au).name.lower()} | {r.z_text(row.au)} | {row.delta:+.2f} | "
                         f"{_sign(row.sign)} | {'yes' if row.au in named else ''} | {row.verdict} |")
        lines += ["", f"Against G: {chk.sens_hits}/{chk.sens_pairs} parents move {r.predicted} as their edge says; "
                      f"{chk.inv_hits}/{chk.inv_pairs} non-parents leave it unchanged."]
        blind = [a for a, _, _, _ in self.explainer.parents(r.predicted, self.graph) if self.explainer.unseen(a)]
        if blind:
            lines.append(f"Parents of {r.predicted} in G this front end cannot see: {', '.join(blind)} "
                         "(not coded: they cannot move it on a face it reads).")
        unfaithful = [a for a in named if a in self.explainer.aus and abs(r.effect(a)) <= chk.epsilon]
        if unfaithful:
            lines.append(f"Named but with no effect on this decision: {', '.join(unfaithful)}.")
        return "\n".join(lines)

    def _settings_suffix(self, r: Reading) -> str:
        if not r.settings:
            return ""
        return " under " + ", ".join(f"do({a} = {v:g})" for a, v in r.settings.items())

    def _what_if(self, q: Question) -> Iterator[str]:
        if q.problem:
            yield f"I could not read that what-if: {q.problem}.\n\n" + self._help_text()
            return
        before = self.current
        before_text = self._rationale_of_current()
        after = self.explainer.what_if(before, q.settings)
        lines = [", ".join(f"do({a} = {v:g})" for a, v in q.settings.items()) + " (was "
                 + ", ".join(f"{a} = {before.z_text(a)}" for a in q.settings) + ")", ""]
        if after.predicted != before.predicted:
            lines.append(f"The prediction **changes**: {before.predicted} → **{after.predicted}** "
                         f"(p {before.prob(before.predicted):.2f} → {after.prob(after.predicted):.2f}).")
        else:
            lines.append(f"The prediction **stays {after.predicted}** "
                         f"(p {before.prob(before.predicted):.2f} → {after.prob(after.predicted):.2f}).")
        moves = sorted(self.explainer.classes, key=lambda c: -abs(after.prob(c) - before.prob(c)))[:3]
        lines.append("Largest moves: " + ", ".join(f"{c} {before.prob(c):.2f} → {after.prob(c):.2f}" for c in moves)
                     + ".")
        prefix = "\n".join(lines) + "\n\n**New rationale:**\n\n"
        text = ""
        for md, so_far in self.stream_rationale(after, prefix):
            text = so_far  # the whole rationale once the stream ends
            yield md
        self.current, self.current_rationale = after, text
        old, new = set(Explainer.named(before_text or "")), set(Explainer.named(text))
        diff = []
        if old - new:
            diff.append("no longer named: " + ", ".join(au_vocab.sort_aus(old - new)))
        if new - old:
            diff.append("newly named: " + ", ".join(au_vocab.sort_aus(new - old)))
        tail = ("What changed in the rationale: " + "; ".join(diff) + ".") if diff else \
            "The rationale names the same AUs as before."
        yield prefix + f"> {text}\n\n{tail}\n\nAsk `reset` to go back to the face as seen."

    def _matters(self, q: Question) -> Iterator[str]:
        r = self.current
        cls = q.cls or r.predicted
        parents = self.explainer.parents(cls, self.graph)
        name = getattr(self.graph, "name", "G")
        if not parents:
            lines = [f"G (`{name}`) has no parents for **{cls}**."]
        else:
            lines = [f"In G (`{name}`), **{cls}** has {len(parents)} parent AU(s):", ""]
            lines += [f"- {_sign(s)} {_au(a)} — weight {w:.2f}, {prov}"
                      + (" — not seen by this front end" if self.explainer.unseen(a) else "")
                      for a, s, w, prov in parents]
        ranked = sorted(self.explainer.aus, key=lambda a: -abs(r.effect(a, cls)))[:5]
        lines += ["", f"On this face, the AUs whose do(z_k = 0) moves the {cls} logit most:", ""]
        lines += [f"- {a}: Δ = {r.effect(a, cls):+.2f} (z = {r.z_text(a)})" for a in ranked]
        chk = self.check(r, cls)
        lines += ["", f"Check against G for {cls}: {chk.sens_hits}/{chk.sens_pairs} parents move it as their edge "
                      f"says, {chk.inv_hits}/{chk.inv_pairs} non-parents leave it unchanged."]
        yield "\n".join(lines)

    def _about_au(self, q: Question) -> Iterator[str]:
        r = self.current
        lines = []
        for a in q.aus:
            k = self.explainer.aus.index(a)
            sign = int(self.explainer.signs(self.graph)[k, self.explainer.classes.index(r.predicted)])
            role = {1: "an excitatory parent", -1: "an inhibitory parent", 0: "not a parent"}[sign]
            state = ("the front end cannot see it: " + self.explainer.unseen(a)) if not r.seen(a) else \
                ("active" if r.z[k] >= ACTIVE else "inactive")
            lines.append(f"{_au(a)}: z = {r.z_text(a)} ({state}); "
                         f"removing it moves {r.predicted} by Δ = {r.effect(a):+.2f}; in G it is {role} of "
                         f"{r.predicted}. Ask \"what if {a} were absent?\" to see the rest.")
        yield "\n\n".join(lines)

    def _reset(self, q: Question) -> Iterator[str]:
        self.current, self.current_rationale = self.face, self.rationale
        yield f"Back to the face as seen: **{self.face.predicted}** (p = {self.face.prob(self.face.predicted):.2f})."

    def _help(self, q: Question) -> Iterator[str]:
        lead = ""
        if q.unknown:
            lead = self._unknown_text(q.unknown) + "\n\n"
        elif q.problem:
            lead = f"I could not read that: {q.problem}.\n\n"
        else:
            lead = "I did not understand that.\n\n"
        yield lead + self._help_text()

    def _where(self, q: Question) -> Iterator[str]:
        fm = self.explainer.where(self.pixels, q.aus or None, self.graph, reading=self.face)
        self.overlay = fm.image
        if not fm.aus:
            yield "No AU is invoked for this prediction and none is active, so there is nothing to locate."
            return
        which = "" if q.aus else f" (the AUs invoked for {fm.predicted})"
        how = LANDMARK_WORDS if fm.method == "landmarks" else \
            f"{METHOD_WORDS.get(fm.method, fm.method)} of the AU's latent unit"
        lines = [(f"**Where each AU is seen**{which}: {how} on the face as seen (what-ifs do not move pixels). The "
                  "overlays are in the *Where the AU is seen* panel."), "",
                 "| AU | z | Δ on " + fm.predicted + " | map peaks |", "|---|---|---|---|"]
        per_au = fm.summary()["aus"]
        for a in fm.aus:
            info = per_au[a]
            down, across = info["peak"]
            z = f"{info['z']:.2f}" if self.face.seen(a) else "not seen"
            if fm.method == "landmarks":  # a real photo: the region on its landmarks, in the picture's pixels
                x, y = to_picture(self.face.face, down, across)
                place = f"{au_vocab.info(a).region}, centred at x = {x:.0f}, y = {y:.0f} in the picture"
            else:
                place = f"{_place(down, across)} ({100 * down:.0f}% down, {100 * across:.0f}% across)"
            lines.append(f"| {a} {au_vocab.info(a).name.lower()} | {z} | {info['delta']:+.2f} | {place} |")
        if q.unknown:
            lines.append("\n" + self._unknown_text(q.unknown))
        yield "\n".join(lines)

    def _unknown_text(self, aus: list[str]) -> str:
        """Why AUs a person named are not in the latent: the front end cannot see them, or the model lacks them."""
        blind = [a for a in aus if self.explainer.unseen(a)]
        lacking = [a for a in aus if a not in blind]
        out = [f"{a} is not seen by this front end ({self.explainer.unseen(a)}), so the head has no z for it."
               for a in blind]
        if lacking:
            out.append(f"{', '.join(lacking)} {'is' if len(lacking) == 1 else 'are'} not in this model's AU latent "
                       f"({', '.join(self.explainer.aus)}).")
        return " ".join(out)

    def _help_text(self) -> str:
        return ("I can answer:\n"
                "- **why?** — the rationale and the per-AU intervention effects behind it\n"
                "- **what if AU12 were absent?** / **what if AU4 were at 0.9?** — runs do(z_k = v) and shows the new "
                "prediction, the new rationale and what changed (several AUs: \"AU6 and AU12 absent\")\n"
                f"- **which AUs matter for sadness?** — the parents in G and the effects on this face "
                f"(classes: {', '.join(self.explainer.classes)})\n"
                "- **AU12?** — one AU: its activation, its effect, its role in G\n"
                "- **where is AU12?** — where on the face the model sees it (a region map over the face)\n"
                "- **reset** — back to the face as seen")
