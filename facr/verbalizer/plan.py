"""Plan, then realise: the reasoner decides *what* a rationale says, the language model only *how*.

A :class:`RationalePlan` is the content of one rationale: the target set T (the invoked AUs the
latent shows, z_k ≥ ½, largest intervention effect first), which of them count against ĉ, the
stated emotion ĉ (the head's argmax) and its probability. :class:`PlanLogitsProcessor` realises it
at decoding time as a small automaton per row, over a closed phrase grammar:

* **the frame** — the LM chooses how the sentence opens (:data:`FRAMES`: "The face shows …",
  "Because of …", "With … present", or the AUs first) and, once every AU of T is named, how it
  closes ("; these are characteristic of", ", which points to", " point to", …, in the number
  the AU count asks for). Between two AUs it writes the list's comma or its final " and ". Each
  stretch is a trie of the phrases' token ids: the LM's scores choose among the phrases, token by
  token, and nothing outside them can be written — so no word of its own, no digit, no repeated or
  looping words, no second sentence;
* **an AU** — the plan's next AU token ``<AUk>``, allowed only once the stretch before it is a whole
  phrase; its FACS name follows, forced: ``<AU12> (lip corner puller)``; each AU of T once, in the
  plan's order, every other AU token masked;
* **polarity** — an AU of T can count *against* ĉ (removing it raises ĉ's logit: a lowered brow
  on a face read as happy). It is never said to point to ĉ: such AUs come first, in a contrast
  clause (:data:`CONTRASTS`: "Although AU4 (brow lowerer) is visible, AU12 (lip corner puller)
  points to happiness …"), and when every AU of T counts against ĉ the sentence says they speak
  against it (:data:`AGAINST_FRAMES`). :func:`realisations` lists every wording of a plan;
* **the emotion** — only once every AU of T is named and a closing phrase is complete may the LM
  start the emotion word (the first token of `` happiness``); its rest, the probability and the full
  stop follow, forced: ``happiness (p = 0.93).``, then end-of-text. With T empty the frame is one of
  :data:`NONE_PHRASES` ("No action unit the reasoner relies on is visible; it still reads …").

Free prose between the steps (whole words from a whitelist, up to a dozen tokens a stretch) was the
first design: on the benchmark it was faithful and complete but Gemma-3-270M looped ("a sign of a
sign of …") and SmolLM2 wrote clumsy fragments. The grammar keeps the guarantee and makes every
realisation a sentence a person can read; what the LM still decides is which of its phrasings it
prefers for this face.

So every rationale names every AU of T exactly once in FACS form, nothing else, states ĉ and stops
(:func:`facr.verbalizer.wellformed.check_rationale` passes), within a length bound known before
decoding (:meth:`PlanLogitsProcessor.max_new_tokens`). Greedy decoding only (the verbalizer's); the
processor must run last, after ``generate``'s own (custom processors are appended after them), so
its choice is the one taken. Rows are samples, batched and left-padded as ever: the state of a row
is read from the tokens it has generated so far. Training targets are the same phrases, encoded
piece by piece as decoding emits them (:meth:`RationalePlan.segments`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Mapping

import torch
from transformers import LogitsProcessor

from facr import au as au_vocab

# The sentence frames: an opener before the first AU, and the closers that may follow the last AU
# when the sentence opened so, each as (plural, singular) for T of several AUs or of one.
FRAMES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("The face shows ", (("; these are characteristic of", "; this is characteristic of"),
                         (", a sign of", ", a sign of"),
                         (", which points to", ", which points to"),
                         (", consistent with", ", consistent with"))),
    ("", ((" are visible, which points to", " is visible, which points to"),
          (" point to", " points to"),
          (" together indicate", " indicates"))),
    ("Because of ", ((", the expression reads as", ", the expression reads as"),
                     (", the face reads as", ", the face reads as"))),
    ("With ", ((" present, the expression reads as", " present, the expression reads as"),
               (" present, the face reads as", " present, the face reads as"))),
)
# Every (opener, plural closer, singular closer): the realisations training targets are drawn from.
# TEMPLATES[0] is the fixed template a rationale's wording is compared with (fluency).
TEMPLATES: tuple[tuple[str, str, str], ...] = tuple(
    (opener, plural, singular) for opener, closers in FRAMES for plural, singular in closers)
TEMPLATE = TEMPLATES[0]  # "The face shows A, B and C; these are characteristic of E."
SEPARATOR, LAST_SEPARATOR = ", ", " and "
# When T is empty (no invoked AU is shown): say so, and still state the emotion.
NONE_PHRASES = ("No action unit the reasoner relies on is visible; it still reads",
                "The face shows no action unit the reasoner relies on; it still reads")
# Polarity: an AU of T can count *against* ĉ (removing it raises ĉ's logit, Δ < 0: AU4 for a face
# read as happy). Such AUs are never said to point to ĉ: a contrast clause names them first (opener,
# then its (plural, singular) joiner), and a frame that may follow mid-sentence names the rest.
CONTRASTS: tuple[tuple[str, tuple[str, str]], ...] = (
    ("Although ", (" are visible, ", " is visible, ")),
    ("Despite ", (", ", ", ")),
    ("Even with ", (" present, ", " present, ")),
)
AFTER_CONTRAST: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("the face shows ", FRAMES[0][1]),
    ("", ((" point to", " points to"), (" together indicate", " indicates"))),
)
# When every AU of T counts against ĉ: say that they speak against the emotion the reasoner still reads.
AGAINST_FRAMES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("The face shows ", (("; these speak against", "; this speaks against"),)),
    ("", ((" speak against", " speaks against"),)),
)


def name_text(au: str) -> str:
    """What follows an AU's token: `` (lip corner puller)``."""
    return f" ({au_vocab.info(au).name.lower()})"


def emotion_text(emotion: str) -> str:
    """The emotion word as the plan writes it: a word of its own, `` happiness``."""
    return " " + emotion


def facs_phrase(au: str, *, token: bool = True) -> str:
    """``<AU12> (lip corner puller)`` (``token=False``: ``AU12 (lip corner puller)``)."""
    a = au_vocab.canonical(au)
    return (f"<{a}>" if token else a) + name_text(a)


def probability_tail(probability: float | None) -> str:
    """What follows the emotion word: `` (p = 0.93).``, or ``.`` without a probability."""
    return "." if probability is None else f" (p = {probability:.2f})."


def _separators(n: int) -> list[str]:
    """The stretches between n listed AUs: ", " and, before the last, " and "."""
    return [LAST_SEPARATOR if i == n - 1 else SEPARATOR for i in range(1, n)]


def _number(pair: tuple[str, str], n: int) -> str:
    return pair[0] if n > 1 else pair[1]


@functools.lru_cache(maxsize=256)
def realisations(n_against: int, n_support: int) -> tuple[tuple[str, ...], ...]:
    """Every way the grammar can realise a plan whose T holds ``n_against`` AUs that count against ĉ
    and ``n_support`` that support it: each a tuple of the n + 1 stretches (before the first AU,
    between two, after the last; AUs against ĉ come first, in the contrast clause)."""
    n = n_against + n_support
    if n == 0:
        return tuple((phrase,) for phrase in NONE_PHRASES)
    if n_against == 0:
        return tuple((o, *_separators(n), _number(c, n)) for o, cs in FRAMES for c in cs)
    if n_support == 0:
        return tuple((o, *_separators(n), _number(c, n)) for o, cs in AGAINST_FRAMES for c in cs)
    return tuple((co, *_separators(n_against), _number(cj, n_against) + o, *_separators(n_support),
                  _number(c, n_support))
                 for co, cj in CONTRASTS for o, cs in AFTER_CONTRAST for c in cs)


def template_rationale(aus: list[str], emotion: str, probability: float | None = None, *, index: int = 0,
                       token: bool = False, against: list[str] = ()) -> str:
    """A rationale naming exactly ``aus`` (in FACS form) for ``emotion``, in realisation ``index`` of
    :func:`realisations` (0 with nothing ``against``: :data:`TEMPLATE`, the fluency baseline); AU
    tokens with ``token=True`` (training targets)."""
    return "".join((f"<{t}>" if token else t) if kind == "au" else t
                   for kind, t in segments(aus, emotion, probability, index, against))


def segments(aus: list[str], emotion: str, probability: float | None = None, index: int = 0,
             against: list[str] = ()) -> list[tuple[str, str]]:
    """A rationale as the decoder builds it: ``("prose", text)`` (a phrase of the grammar, the LM's
    choice), ``("au", AUk)`` (the AU token), ``("name", text)`` (its forced FACS name),
    ``("emotion", text)`` and ``("tail", text)`` (forced). The AUs of ``against`` come first."""
    order = speaking_order(aus, against)
    n_against = len(set(order) & set(map(au_vocab.canonical, against)))
    stretches = realisations(n_against, len(order) - n_against)
    out: list[tuple[str, str]] = []
    for i, stretch in enumerate(stretches[index % len(stretches)]):
        out.append(("prose", stretch))
        if i < len(order):
            out += [("au", order[i]), ("name", name_text(order[i]))]
    out += [("emotion", emotion_text(emotion)), ("tail", probability_tail(probability))]
    return [(k, t) for k, t in out if t]


def speaking_order(aus: list[str], against: list[str] = ()) -> list[str]:
    """The order a rationale names ``aus`` in: those ``against`` ĉ first, then the rest, each part in
    the plan's order (largest effect first)."""
    against = set(map(au_vocab.canonical, against))
    aus = [au_vocab.canonical(a) for a in aus]
    return [a for a in aus if a in against] + [a for a in aus if a not in against]


@dataclass
class RationalePlan:
    """What one rationale says: the AUs of T in order, the stated emotion and its probability, and
    ``against``: the AUs of T that count against the emotion (removing one raises its logit), which
    the rationale names in a contrast clause ("Although AU4 (brow lowerer) is visible, …")."""

    aus: list[str]
    emotion: str
    probability: float | None = None
    against: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.aus = [au_vocab.canonical(a) for a in self.aus]
        if len(set(self.aus)) != len(self.aus):
            raise ValueError(f"a plan names each AU once: {self.aus}")
        against = set(map(au_vocab.canonical, self.against))
        self.against = [a for a in self.aus if a in against]
        if self.probability is not None and not 0.0 <= float(self.probability) <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {self.probability}")

    @classmethod
    def from_effects(cls, aus: list[str], effects: list[float], emotion: str,
                     probability: float | None = None) -> RationalePlan:
        """The plan naming ``aus`` (T, largest effect first) whose intervention effects on ĉ's logit,
        Δ = ŷ_ĉ(z) − ŷ_ĉ(do(z_k = 0)), are ``effects``: an AU with Δ < 0 counts against ĉ."""
        return cls(list(aus), emotion, probability, [a for a, d in zip(aus, effects) if d < 0])

    @classmethod
    def for_face(cls, invoked, z: Mapping[str, float], effects: Mapping[str, float], emotion: str,
                 probability: float | None = None) -> RationalePlan:
        """The plan of one face (what the audit, the chat and ``facr explain`` all say): of the AUs
        ``invoked`` for ĉ, in their order, those its latent shows (``z[a]`` ≥ ``facr.au.ACTIVE``), with
        their effects Δ on ĉ's logit (:meth:`from_effects`; an AU missing from ``effects`` has Δ = 0)."""
        shown = [a for a in invoked if z[a] >= au_vocab.ACTIVE]
        return cls.from_effects(shown, [float(effects.get(a, 0.0)) for a in shown], emotion, probability)

    @property
    def order(self) -> list[str]:
        """The AUs in the order the rationale names them (:func:`speaking_order`)."""
        return speaking_order(self.aus, self.against)

    def realisations(self) -> tuple[tuple[str, ...], ...]:
        """Every wording the grammar has for this plan (:func:`realisations`)."""
        return realisations(len(self.against), len(self.aus) - len(self.against))

    def text(self, index: int = 0, token: bool = False) -> str:
        return template_rationale(self.aus, self.emotion, self.probability, index=index, token=token,
                                  against=self.against)

    def segments(self, index: int = 0) -> list[tuple[str, str]]:
        """The rationale of realisation ``index`` piece by piece (:func:`segments`). Training encodes
        each piece on its own, as decoding emits it, so the LM learns the very tokens it will meet."""
        return segments(self.aus, self.emotion, self.probability, index, self.against)


class PlanLogitsProcessor(LogitsProcessor):
    """Realises one :class:`RationalePlan` per row (module docstring). ``au_token_ids[k]`` is the
    token of ``aus[k]``; ``vocab_size`` the width of the scores."""

    def __init__(self, tokenizer, aus: list[str], au_token_ids: list[int], plans: list[RationalePlan],
                 vocab_size: int):
        self.vocab_size = vocab_size
        self.eos = tokenizer.eos_token_id
        if self.eos is None:
            raise ValueError("plan-and-realise decoding needs a tokenizer with an end-of-text token")
        cache: dict[str, tuple[int, ...]] = {}

        def encode(text: str) -> tuple[int, ...]:
            if text not in cache:
                cache[text] = tuple(tokenizer(text, add_special_tokens=False).input_ids)
            return cache[text]

        index = {au_vocab.canonical(a): k for k, a in enumerate(aus)}
        self.au_ids = torch.as_tensor(au_token_ids, dtype=torch.long)
        self.rows = []
        for p in plans:
            missing = [a for a in p.aus if a not in index]
            if missing:
                raise ValueError(f"plan names AUs the verbalizer does not know: {missing}")
            order = p.order
            self.rows.append({
                "au_ids": [au_token_ids[index[a]] for a in order],
                "names": [encode(name_text(a)) for a in order],
                "emotion": encode(emotion_text(p.emotion)),  # a word of its own, never glued to the last
                "tail": encode(probability_tail(p.probability)) + (self.eos,),
                "stretches": [tuple(encode(s) for s in r) for r in p.realisations()]})

    def max_new_tokens(self) -> int:
        """The most tokens any row can take: its longest realisation's phrases, every forced FACS
        name, the emotion word, its tail and end-of-text."""
        best = 1
        for r in self.rows:
            phrases = max(sum(map(len, stretches)) for stretches in r["stretches"])
            forced = sum(1 + len(n) for n in r["names"]) + len(r["emotion"]) + len(r["tail"])
            best = max(best, phrases + forced)
        return best

    # ------------------------------------------------------------------ the automaton
    def _state(self, row: dict, ids: list[int]):
        """(forced next token or None, index of the plan's next step, this stretch's tokens, the
        stretches written so far, finished) after the row's generated ``ids``."""
        forced: list[int] = []
        nxt, stretch, done, finished = 0, [], [], False
        n = len(row["au_ids"])
        for t in ids:
            if finished:
                break
            if forced:
                forced.pop(0)
                finished = t == self.eos
                continue
            if nxt < n and t == row["au_ids"][nxt]:
                done.append(tuple(stretch))
                forced, nxt, stretch = list(row["names"][nxt]), nxt + 1, []
            elif nxt == n and t == row["emotion"][0]:
                forced = list(row["emotion"][1:]) + list(row["tail"])
            elif t == self.eos:
                finished = True
            else:
                stretch.append(t)
        return (forced[0] if forced else None), nxt, stretch, done, finished

    def _allowed(self, row: dict, nxt: int, stretch: list[int], done: list[tuple[int, ...]]) -> list[int]:
        """The tokens the LM may choose from: over the realisations that agree with the stretches
        written so far, each one's next token where this stretch is a prefix of its phrase here, and
        the plan's next step where the stretch is a whole phrase."""
        k, stretch_t = len(stretch), tuple(stretch)
        allowed, whole = set(), False
        for stretches in row["stretches"]:
            if any(stretches[i] != d for i, d in enumerate(done)):
                continue
            phrase = stretches[nxt]
            if phrase[:k] == stretch_t:
                if len(phrase) > k:
                    allowed.add(phrase[k])
                else:
                    whole = True
        if whole or not allowed:  # nothing left to write here (or a stretch off the grammar): the plan goes on
            allowed.add(row["au_ids"][nxt] if nxt < len(row["au_ids"]) else row["emotion"][0])
        return sorted(allowed)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows = scores.shape[0]
        if rows != len(self.rows):
            raise ValueError(f"plan-and-realise decoding is greedy, one row per plan: {rows} rows, "
                             f"{len(self.rows)} plans")
        out = torch.full_like(scores, float("-inf"))
        for b in range(rows):
            row = self.rows[b]
            forced, nxt, stretch, done, finished = self._state(row, input_ids[b].tolist())
            if finished:
                forced = self.eos  # only padding from here on
            if forced is not None:
                out[b, forced] = 0.0
                continue
            allowed = torch.as_tensor(self._allowed(row, nxt, stretch, done), device=scores.device)
            out[b, allowed] = scores[b, allowed]
            if out[b].max() == float("-inf"):  # another processor ruled all of them out: take the first
                out[b, allowed[0]] = 0.0
        return out
