"""Is a rationale well formed? The text a person reads, checked against its plan: the target set T
(the invoked AUs the latent shows) and the stated emotion ĉ.

A well-formed rationale is one or two sentences; it names every AU of T exactly once, each with its
FACS name, written "AU12 (lip corner puller)" or "the lip corner puller (AU12)"; it names no AU
outside T; it states the emotion (any of its common words: "happiness", "happy") with its
probability ("happiness (0.93)", "happiness (p = 0.93)", "happiness (93%)", "happiness, with
probability 0.93", "happiness (very likely)") or in words alone, and stops there: nothing follows the
emotion statement but a full stop. No bare number anywhere else (the "1" of "AU6, 1 and 2" is an
AU named without its FACS form and a bare number both).

The AUs a text names are read by the one parser (:func:`facr.au.mentions`); the audit's
``well_formed_rate`` is the share of factual rationales with no problem.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from facr import au as au_vocab
from facr.external.generations import _EMOTION_WORDS

# The names of the rules, the prefix of each problem string check_rationale returns.
RULES = ("empty", "sentences", "missing", "repeated", "outside target", "not in FACS form", "bare number",
         "no emotion", "after the emotion")

_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?\s*%?")
_WORD = re.compile(r"[a-z]+")
_PROB = r"(?:\d{1,3}(?:\.\d+)?\s*%|0?\.\d+|1(?:\.0+)?|0)"
_LIKELY = r"(?:(?:very|most|quite|almost|highly)\s+)?(?:likely|probably|probable|possibly|certainly|certain)"
# What may follow the emotion word: its probability, as a number or in words, then a full stop (no
# leading \s*: the first path that matches wins, and it would swallow the space the forms start with).
_EMOTION_TAIL = re.compile(
    rf"(?:(?:\s*,\s*|\s*\(\s*|\s+)(?:(?:with\s+)?(?:a\s+)?(?:probability|confidence|p)(?:\s+of)?\s*[=:]?\s*)?"
    rf"(?:{_PROB}|{_LIKELY})\s*\)?)?\s*[.!]?\s*", re.IGNORECASE)
_OPEN = re.compile(r"\s*\(\s*")
_CLOSE = re.compile(r"\s*\)")


def _in_facs_form(text: str, m: au_vocab.Mention) -> bool:
    """``AUk (its name)`` or ``its name (AUk)``: a numbered token whose parenthesised neighbour is
    the FACS name of the same AU."""
    if m.kind != "token" or m.described is None or m.described_as != m.number:
        return False
    ns, ne = m.described
    if ns >= m.end:  # "AU12 (lip corner puller)"
        return bool(_OPEN.fullmatch(text, m.end, ns) and _CLOSE.match(text, ne))
    return bool(_OPEN.fullmatch(text, ne, m.start) and _CLOSE.match(text, m.end))  # "... puller (AU12)"


def _emotion_span(text: str, emotion: str) -> tuple[int, int] | None:
    """The span of the last word in ``text`` that names ``emotion`` ("happiness", "happy")."""
    hits = [m.span() for m in _WORD.finditer(text.lower())
            if m.group(0) == emotion or _EMOTION_WORDS.get(m.group(0)) == emotion]
    return hits[-1] if hits else None


def check_rationale(text: str, target_aus: Iterable[str], emotion: str) -> list[str]:
    """The problems of one rationale against its target AUs T and stated emotion ĉ (each problem a
    string that starts with one of :data:`RULES`); an empty list means well formed."""
    if not text or not text.strip():
        return ["empty"]
    target = {au_vocab.parse(a) for a in target_aus}
    problems = []
    sentences = [s for s in _SENTENCE_END.split(text) if re.search(r"[A-Za-z0-9]", s)]
    if len(sentences) not in (1, 2):
        problems.append(f"sentences: {len(sentences)}, not one or two")
    found = au_vocab.mentions(text)
    counts = Counter(m.number for m in found)
    for n in sorted(target):
        if counts[n] == 0:
            problems.append(f"missing: AU{n}")
    for n in sorted(counts):
        if counts[n] > 1:
            problems.append(f"repeated: AU{n} ({counts[n]} times)")
        if n not in target:
            problems.append(f"outside target: AU{n}")
        elif counts[n] == 1 and not any(_in_facs_form(text, m) for m in found if m.number == n):
            problems.append(f"not in FACS form: AU{n}")
    stated = _emotion_span(text, emotion)
    tail_end = len(text)
    if stated is None:
        problems.append(f"no emotion: {emotion}")
    else:
        tail = _EMOTION_TAIL.match(text, stated[1])
        tail_end = tail.end()
        if tail_end < len(text):
            problems.append(f"after the emotion: {text[stated[1]:].strip()!r}")
    # numbers that are neither part of an AU token nor the emotion's probability
    tokens = [(m.start, m.end) for m in found if m.kind == "token"]
    allowed_until = tail_end if stated is not None else -1
    for m in _NUMBER.finditer(text):
        inside_token = any(s <= m.start() < e for s, e in tokens)
        is_probability = stated is not None and stated[1] <= m.start() < allowed_until
        if not inside_token and not is_probability:
            problems.append(f"bare number: {m.group(0).strip()!r}")
    return problems


def well_formed(text: str, target_aus: Iterable[str], emotion: str) -> bool:
    """True when :func:`check_rationale` finds no problem."""
    return not check_rationale(text, target_aus, emotion)
