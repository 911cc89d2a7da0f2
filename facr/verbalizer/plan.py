"""Plan, then realise: the reasoner decides *what* a rationale says, the language model only *how*.

A :class:`RationalePlan` is the content of one rationale: the target set T (the invoked AUs the
latent shows, z_k ≥ ½, largest intervention effect first), the stated emotion ĉ (the head's
argmax) and its probability. :class:`PlanLogitsProcessor` realises it at decoding time as a small
automaton per row:

* **prose** — the LM writes its own words between the AUs, from a table computed once per
  tokenizer: a token may be prose only if it is whole words of :data:`PROSE_WORDS` (the connectives
  of an explanation: the LM chooses how evidence is linked to the conclusion, never a claim of its
  own about the face; no emotion word, no FACS name, no "AU"), spaces, commas, semicolons or
  hyphens — so no digit (no bare number), no sentence end, no parenthesis, no markup, no special
  token — and a word-start token glued to the word before ("the" + "face") is masked. Every AU
  token but the plan's next one is masked. At most ``max_prose`` tokens per stretch; then the next
  step of the plan is forced;
* **an AU** — when the LM picks the plan's next AU token ``<AUk>``, its FACS name follows, forced:
  ``<AU12> (lip corner puller)``; each AU of T once, in the plan's order;
* **the emotion** — only once every AU of T is named may the LM start the emotion word (the first
  token of `` happiness``); its rest, the probability and the full stop follow, forced:
  ``happiness (p = 0.93).``, then end-of-text.

So every rationale names every AU of T exactly once in FACS form, nothing else, states ĉ and stops
(:func:`facr.verbalizer.wellformed.check_rationale` passes), within a length bound known before
decoding (:meth:`PlanLogitsProcessor.max_new_tokens`). Greedy decoding only (the verbalizer's); the
processor must run last, after ``generate``'s own (custom processors are appended after them), so
its choice is the one taken. Rows are samples, batched and left-padded as ever: the state of a row
is read from the tokens it has generated so far.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor

from facr import au as au_vocab

# The fixed template a rationale's wording is compared with (fluency) and the shapes training
# targets take: each names the AUs in FACS form and ends on the emotion statement.
TEMPLATE = "the face shows {aus}; these are characteristic of {emotion}"
TEMPLATES = (
    TEMPLATE,
    "{aus} are visible, which points to {emotion}",
    "because of {aus}, the expression reads as {emotion}",
    "the face shows {aus}, a sign of {emotion}",
)
NONE_TEMPLATE = "no action unit of it is visible; the reasoner still reads {emotion}"
# What the LM's own words may be made of: letters, spaces, commas, semicolons, hyphens. No digits
# (no bare numbers), no sentence end, no parentheses (a FACS name is the plan's), no quotes, no markup.
_PROSE = re.compile(r"[A-Za-z ,;\-]+")
_WORD = re.compile(r"[A-Za-z]+")
# The words the LM may write between the plan's steps: the templates' and the connectives that link
# evidence to a conclusion — none that claims what an AU does ("raises", "lowered") or anything else
# about the face, so the LM's wording can be fluent but never says something the plan does not.
PROSE_WORDS = frozenset(
    """a all along alongside also an and are as at because both call characteristic combination
    conclusion consistent evidence expression face for here in indicate indicates is it its lead leads
    mark marks no of on pattern plus point points present reads reasoner seen shows sign signal signals
    so still suggest suggests that the their them these they this those to together typical unit units
    visible what which while with yet action""".split())


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
    """A rationale naming exactly ``aus`` (in FACS form) for ``emotion``, in template ``index``
    (0: :data:`TEMPLATE`, the fluency baseline); AU tokens with ``token=True`` (training targets)."""
    if not aus:
        body = NONE_TEMPLATE.format(emotion=emotion)
    else:
        body = TEMPLATES[index % len(TEMPLATES)].format(aus=join_aus([facs_phrase(a, token=token) for a in aus]),
                                                         emotion=emotion)
    return body + probability_tail(probability)


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
        """The rationale of template ``index`` as the decoder builds it: ``("prose", text)`` (the LM's
        words), ``("au", AUk)`` (the AU token), ``("name", text)`` (its forced FACS name),
        ``("emotion", text)`` and ``("tail", text)`` (forced). Training encodes each piece on its own,
        as decoding emits it, so the LM learns the very tokens it will meet."""
        template = TEMPLATES[index % len(TEMPLATES)] if self.aus else NONE_TEMPLATE
        out: list[tuple[str, str]] = []
        for part in re.split(r"(\{aus\}|\{emotion\})", template):
            if part == "{aus}":
                for i, a in enumerate(self.aus):
                    if i:
                        out.append(("prose", " and " if i == len(self.aus) - 1 else ", "))
                    out += [("au", a), ("name", name_text(a))]
            elif part == "{emotion}":
                if out and out[-1][0] == "prose":
                    out[-1] = ("prose", out[-1][1].rstrip())
                out.append(("emotion", emotion_text(self.emotion)))
            elif part:
                out.append(("prose", part))
        out.append(("tail", probability_tail(self.probability)))
        return [(k, t) for k, t in out if t]


class _Vocab:
    """What the processor needs to know about a tokenizer's vocabulary, computed once per tokenizer:
    which tokens may be prose (whole words of :data:`PROSE_WORDS`, spaces, commas, semicolons,
    hyphens), which of them start glued to the text before (no space marker), and which end in a
    letter. Decoding then masks by table, with no per-token text check."""

    def __init__(self, tokenizer, size: int):
        self.tokenizer = tokenizer
        n = min(size, len(tokenizer))
        pieces = tokenizer.batch_decode([[i] for i in range(n)]) + [""] * (size - n)
        raw = [t or "" for t in tokenizer.convert_ids_to_tokens(list(range(n)))] + [""] * (size - n)
        special = set(tokenizer.all_special_ids)

        def prose(i: int, p: str) -> bool:
            return (i not in special and bool(_PROSE.fullmatch(p))
                    and all(w in (w.lower(), w.lower().capitalize()) and w.lower() in PROSE_WORDS
                            for w in _WORD.findall(p)))

        self.prose_ok = torch.tensor([prose(i, p) for i, p in enumerate(pieces)], dtype=torch.bool)  # [V]
        # "the", not "Ġthe" / "▁the" (Ġ is a letter to str.isalpha: ASCII letters only)
        self.glued = torch.tensor([r[:1].isascii() and r[:1].isalpha() for r in raw], dtype=torch.bool)
        self.ends_in_letter = [p[-1:].isalpha() for p in pieces]
        self._encoded: dict[str, list[int]] = {}

    def encode(self, text: str) -> list[int]:
        if text not in self._encoded:
            self._encoded[text] = self.tokenizer(text, add_special_tokens=False).input_ids
        return self._encoded[text]


_VOCABS: dict[tuple[int, int], _Vocab] = {}


def _vocab(tokenizer, size: int) -> _Vocab:
    key = (id(tokenizer), size)
    if key not in _VOCABS:
        _VOCABS.clear()  # one tokenizer at a time is what a process decodes with
        _VOCABS[key] = _Vocab(tokenizer, size)
    return _VOCABS[key]


class PlanLogitsProcessor(LogitsProcessor):
    """Realises one :class:`RationalePlan` per row (module docstring). ``au_token_ids[k]`` is the
    token of ``aus[k]``; ``vocab_size`` the width of the scores."""

    def __init__(self, tokenizer, aus: list[str], au_token_ids: list[int], plans: list[RationalePlan],
                 vocab_size: int, max_prose: int = 12):
        self.tokenizer = tokenizer
        self.vocab = _vocab(tokenizer, vocab_size)
        self.plans = plans
        self.max_prose = max_prose
        self.eos = tokenizer.eos_token_id
        if self.eos is None:
            raise ValueError("plan-and-realise decoding needs a tokenizer with an end-of-text token")
        index = {au_vocab.canonical(a): k for k, a in enumerate(aus)}
        self.au_ids = torch.as_tensor(au_token_ids, dtype=torch.long)
        self.rows = []
        for p in plans:
            missing = [a for a in p.aus if a not in index]
            if missing:
                raise ValueError(f"plan names AUs the verbalizer does not know: {missing}")
            au_ids = [au_token_ids[index[a]] for a in p.aus]
            names = [self.vocab.encode(name_text(a)) for a in p.aus]
            emotion = self.vocab.encode(emotion_text(p.emotion))  # a word of its own, never glued to the last
            tail = self.vocab.encode(probability_tail(p.probability)) + [self.eos]
            self.rows.append({"au_ids": au_ids, "names": names, "emotion": emotion, "tail": tail})

    def max_new_tokens(self) -> int:
        """The most tokens any row can take: a prose stretch before each AU and before the emotion,
        every forced FACS name, the emotion word, its tail and end-of-text."""
        best = 1
        for r in self.rows:
            forced = sum(1 + len(n) for n in r["names"]) + len(r["emotion"]) + len(r["tail"])
            best = max(best, (len(r["au_ids"]) + 1) * self.max_prose + forced)
        return best

    # ------------------------------------------------------------------ the automaton
    def _state(self, row: dict, ids: list[int]):
        """(forced next token or None, index of the plan's next AU, prose tokens in this stretch,
        finished) after the row's generated ``ids``."""
        forced: list[int] = []
        nxt, prose, finished = 0, 0, False
        for t in ids:
            if finished:
                break
            if forced:
                forced.pop(0)
                if t == self.eos:
                    finished = True
                continue
            if nxt < len(row["au_ids"]) and t == row["au_ids"][nxt]:
                forced = list(row["names"][nxt])
                nxt, prose = nxt + 1, 0
                continue
            if nxt == len(row["au_ids"]):
                if t == row["emotion"][0]:
                    forced = list(row["emotion"][1:]) + list(row["tail"])
                    continue
            if t == self.eos:
                finished = True
                continue
            prose += 1
        return (forced[0] if forced else None), nxt, prose, finished

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows = scores.shape[0]
        if rows != len(self.rows):
            raise ValueError(f"plan-and-realise decoding is greedy, one row per plan: {rows} rows, "
                             f"{len(self.rows)} plans")
        scores = scores.clone()
        au_ids = self.au_ids.to(scores.device)
        for b in range(rows):
            row = self.rows[b]
            ids = input_ids[b].tolist()
            forced, nxt, prose, finished = self._state(row, ids)
            if finished:
                forced = self.eos  # only padding from here on
            covered = nxt == len(row["au_ids"])
            if forced is None and prose >= self.max_prose:  # the stretch is long enough: the plan goes on
                forced = row["emotion"][0] if covered else row["au_ids"][nxt]
            if forced is not None:
                scores[b] = float("-inf")
                scores[b, forced] = 0.0
                continue
            s = scores[b]
            opener = row["emotion"][0]
            steps = {opener} if covered else {row["au_ids"][nxt]}
            kept = {t: float(s[t]) for t in steps}  # the plan's next step survives the prose mask
            allowed = self.vocab.prose_ok
            if ids and self.vocab.ends_in_letter[ids[-1]]:  # a word just ended: the next one starts apart
                allowed = allowed & ~self.vocab.glued
            s[~allowed.to(s.device)] = float("-inf")
            s[au_ids] = float("-inf")
            s[opener] = float("-inf")
            for t in steps:
                s[t] = kept[t]
            if s.max() == float("-inf"):  # nothing the LM may write here: the plan goes on
                s[opener if covered else row["au_ids"][nxt]] = 0.0
        return scores
