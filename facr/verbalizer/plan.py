"""Plan, then realise: the reasoner decides *what* a rationale says, the language model only *how*.

A :class:`RationalePlan` is the content of one rationale: the target set T (the invoked AUs the
latent shows, z_k ≥ ½, largest intervention effect first), the stated emotion ĉ (the head's
argmax) and its probability. :class:`PlanLogitsProcessor` realises it at decoding time as a small
automaton per row, over a closed phrase grammar:

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

from dataclasses import dataclass

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


def join_aus(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def template_rationale(aus: list[str], emotion: str, probability: float | None = None, *, index: int = 0,
                       token: bool = False) -> str:
    """A rationale naming exactly ``aus`` (in FACS form) for ``emotion``, in realisation ``index`` of
    :data:`TEMPLATES` (0: :data:`TEMPLATE`, the fluency baseline); AU tokens with ``token=True``
    (training targets)."""
    return "".join((f"<{t}>" if token else t) if kind == "au" else t
                   for kind, t in segments(aus, emotion, probability, index))


def segments(aus: list[str], emotion: str, probability: float | None = None, index: int = 0) -> list[tuple[str, str]]:
    """A rationale as the decoder builds it: ``("prose", text)`` (a phrase of the grammar, the LM's
    choice), ``("au", AUk)`` (the AU token), ``("name", text)`` (its forced FACS name),
    ``("emotion", text)`` and ``("tail", text)`` (forced)."""
    if not aus:
        out = [("prose", NONE_PHRASES[index % len(NONE_PHRASES)])]
    else:
        opener, plural, singular = TEMPLATES[index % len(TEMPLATES)]
        out = [("prose", opener)]
        for i, a in enumerate(aus):
            if i:
                out.append(("prose", LAST_SEPARATOR if i == len(aus) - 1 else SEPARATOR))
            out += [("au", au_vocab.canonical(a)), ("name", name_text(a))]
        out.append(("prose", plural if len(aus) > 1 else singular))
    out += [("emotion", emotion_text(emotion)), ("tail", probability_tail(probability))]
    return [(k, t) for k, t in out if t]


@dataclass
class RationalePlan:
    """What one rationale says: the AUs of T in order, the stated emotion and its probability."""

    aus: list[str]
    emotion: str
    probability: float | None = None

    def __post_init__(self):
        self.aus = [au_vocab.canonical(a) for a in self.aus]
        if len(set(self.aus)) != len(self.aus):
            raise ValueError(f"a plan names each AU once: {self.aus}")
        if self.probability is not None and not 0.0 <= float(self.probability) <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {self.probability}")

    def text(self, index: int = 0, token: bool = False) -> str:
        return template_rationale(self.aus, self.emotion, self.probability, index=index, token=token)

    def segments(self, index: int = 0) -> list[tuple[str, str]]:
        """The rationale of realisation ``index`` piece by piece (:func:`segments`). Training encodes
        each piece on its own, as decoding emits it, so the LM learns the very tokens it will meet."""
        return segments(self.aus, self.emotion, self.probability, index)


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
            n = len(p.aus)
            if n:
                openers = [encode(o) for o, _ in FRAMES]
                closers = [[encode(pl if n > 1 else sg) for pl, sg in c] for _, c in FRAMES]
                between = [(encode(LAST_SEPARATOR if i == n - 1 else SEPARATOR),) for i in range(1, n)]
            else:
                openers, closers, between = [encode(t) for t in NONE_PHRASES], None, []
            self.rows.append({
                "au_ids": [au_token_ids[index[a]] for a in p.aus],
                "names": [encode(name_text(a)) for a in p.aus],
                "emotion": encode(emotion_text(p.emotion)),  # a word of its own, never glued to the last
                "tail": encode(probability_tail(p.probability)) + (self.eos,),
                "openers": openers, "between": between, "closers": closers})

    def max_new_tokens(self) -> int:
        """The most tokens any row can take: the longest phrase of each stretch, every forced FACS
        name, the emotion word, its tail and end-of-text."""
        best = 1
        for r in self.rows:
            phrases = max(map(len, r["openers"])) + sum(max(map(len, b)) for b in r["between"])
            if r["closers"]:
                phrases += max(len(c) for cs in r["closers"] for c in cs)
            forced = sum(1 + len(n) for n in r["names"]) + len(r["emotion"]) + len(r["tail"])
            best = max(best, phrases + forced)
        return best

    # ------------------------------------------------------------------ the automaton
    @staticmethod
    def _phrases(row: dict, nxt: int, opener: int | None) -> list[tuple[int, ...]]:
        """The phrases the stretch before step ``nxt`` may be (step len(T): the emotion)."""
        if nxt == 0:
            return row["openers"]
        if nxt < len(row["au_ids"]):
            return list(row["between"][nxt - 1])
        return row["closers"][opener] if row["closers"] and opener is not None else []

    def _state(self, row: dict, ids: list[int]):
        """(forced next token or None, index of the plan's next step, this stretch's tokens, the
        opener chosen, finished) after the row's generated ``ids``."""
        forced: list[int] = []
        nxt, stretch, opener, finished = 0, [], None, False
        n = len(row["au_ids"])
        for t in ids:
            if finished:
                break
            if forced:
                forced.pop(0)
                finished = t == self.eos
                continue
            if nxt < n and t == row["au_ids"][nxt]:
                if nxt == 0:
                    opener = next((j for j, o in enumerate(row["openers"]) if list(o) == stretch), None)
                forced, nxt, stretch = list(row["names"][nxt]), nxt + 1, []
            elif nxt == n and t == row["emotion"][0]:
                forced = list(row["emotion"][1:]) + list(row["tail"])
            elif t == self.eos:
                finished = True
            else:
                stretch.append(t)
        return (forced[0] if forced else None), nxt, stretch, opener, finished

    def _allowed(self, row: dict, nxt: int, stretch: list[int], opener: int | None) -> list[int]:
        """The tokens the LM may choose from: each phrase's next token where the stretch is a prefix
        of it, and the plan's next step where the stretch is a whole phrase."""
        k = len(stretch)
        allowed, whole = set(), False
        for ph in self._phrases(row, nxt, opener):
            if list(ph[:k]) == stretch:
                if len(ph) > k:
                    allowed.add(ph[k])
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
            forced, nxt, stretch, opener, finished = self._state(row, input_ids[b].tolist())
            if finished:
                forced = self.eos  # only padding from here on
            if forced is not None:
                out[b, forced] = 0.0
                continue
            allowed = torch.as_tensor(self._allowed(row, nxt, stretch, opener), device=scores.device)
            out[b, allowed] = scores[b, allowed]
            if out[b].max() == float("-inf"):  # another processor ruled all of them out: take the first
                out[b, allowed[0]] = 0.0
        return out
