"""What a person asks the chat, read into one of a few intents.

AUs are read with the one AU parser (:func:`facr.au.extract`: "AU12", "au 4", "lip corner puller");
classes by name or adjective ("sad", "sadness"). Nothing here runs a model: the session
(:mod:`facr.chat.session`) answers the :class:`Question`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from facr import au as au_vocab

KINDS = ("why", "what_if", "matters", "au", "where", "reset", "help")

# Adjectives and common spellings → the lowercase class word used in files.
CLASS_WORDS = {
    "happy": "happiness", "joy": "happiness", "smile": "happiness", "smiling": "happiness",
    "sad": "sadness", "unhappy": "sadness",
    "surprised": "surprise", "astonished": "surprise",
    "afraid": "fear", "fearful": "fear", "scared": "fear",
    "angry": "anger", "mad": "anger",
    "disgusted": "disgust",
    "contemptuous": "contempt",
    "painful": "pain", "hurting": "pain", "in pain": "pain",
    "calm": "neutral",
}
_ABSENT = (r"absent|off|removed?|gone|zero|missing|inactive|not there|not present|switched off|turned off|suppressed"
           r"|without|no longer")
_PRESENT = r"present|on|active|fully|maximal|max|at full|strong|switched on|turned on"
_WHAT_IF = re.compile(r"\b(what if|what would|what happens|suppose|imagine|if|without|remove|set|turn|switch|were|was"
                      r"|at|to)\b")
_MATTERS = re.compile(r"\b(matters?|important|cause[sd]?|causal|drives?|responsible|parents?|needed|count)\b")
_WHY = re.compile(r"\b(why|explain|rationale|reason|how come|justify)\b")
_WHERE = re.compile(r"\b(where|locate[ds]?|location|which part|show me|look(?:s|ing)? at)\b")
_RESET = re.compile(r"^\s*(reset|undo|back|original|start over|go back)\b")
_AU_MENTION = re.compile(r"\bau\s*\d+\b|<au\d+>", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?|\.\d+)\s*(%?)")


@dataclass
class Question:
    """One parsed question. ``settings``: AU → value for a what-if (do(z_k = v)); ``cls``: the class asked
    about; ``unknown``: AUs the person named that the model's latent does not have; ``problem``: why a
    what-if could not be read (shown with the help)."""

    kind: str
    text: str
    settings: dict[str, float] = field(default_factory=dict)
    cls: str | None = None
    aus: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    problem: str | None = None


def find_class(text: str, classes: list[str]) -> str | None:
    """The first class ``text`` names (by its word or a common adjective), else None."""
    low = text.lower()
    hits = []
    for c in classes:
        m = re.search(rf"\b{re.escape(c.replace('_', ' '))}\b|\b{re.escape(c)}\b", low)
        if m:
            hits.append((m.start(), c))
    for word, c in CLASS_WORDS.items():
        m = re.search(rf"\b{re.escape(word)}\b", low)
        if m and c in classes:
            hits.append((m.start(), c))
    return min(hits)[1] if hits else None


def _segment_value(segment: str) -> tuple[float | None, str | None]:
    """The value a what-if segment sets, or None where it states none; with the problem, if any."""
    s = _AU_MENTION.sub(" ", segment.lower())
    for m in _NUMBER.finditer(s):
        v = float(m.group(1))
        if m.group(2) == "%":
            v /= 100.0
        if not 0.0 <= v <= 1.0:
            return None, (f"{m.group(0).strip()} is outside [0, 1]: z_k is a probability "
                          "(0 = absent, 1 = fully present)")
        return v, None
    if re.search(rf"\b({_ABSENT})\b", s) or re.search(r"\b(no|not)\b", s):
        return 0.0, None
    if re.search(rf"\b({_PRESENT})\b", s):
        return 1.0, None
    return None, None


def parse_question(text: str, aus: list[str], classes: list[str]) -> Question:
    """Read ``text`` against the model's AU latent order ``aus`` and its ``classes``.

    * ``what_if``: AUs and a value each ("what if AU12 were absent?" → {AU12: 0}, "AU4 at 0.9",
      "AU6 and AU12 at 90%"); an AU with no stated value is set to 0 (absent).
    * ``matters``: "which AUs matter for sadness?" (``cls`` = the class named, else the prediction).
    * ``why``: "why?", "explain".   ``au``: an AU named with no intent ("AU12?").
    * ``where``: "where is AU12?", "where does it look?" (no AU: the AUs invoked for the prediction).
    * ``reset``: back to the face as seen.   ``help``: anything else.
    """
    raw = text or ""
    low = raw.lower().strip()
    named = [f"AU{n}" for n in au_vocab.extract(raw)]
    known = [a for a in named if a in aus]
    unknown = [a for a in named if a not in aus]
    cls = find_class(low, classes)
    q = Question(kind="help", text=raw, cls=cls, aus=known, unknown=unknown)
    if not low:
        return q
    if _RESET.search(low):
        q.kind = "reset"
        return q
    if _WHERE.search(low):
        q.kind = "where"
        return q
    if _MATTERS.search(low) and not known:
        q.kind = "matters"
        return q
    if known and (_WHAT_IF.search(low) or _segment_value(low)[0] is not None):
        # Split "AU4 at 0.9 and AU12 absent" into segments; a segment without a value takes the
        # next stated one ("AU6 and AU12 were absent"), then the last one, then 0 (absent).
        parts = [p for p in re.split(r",|;|\band\b|\bbut\b", raw) if p.strip()]
        chunks: list[tuple[list[str], float | None]] = []
        for p in parts:
            value, problem = _segment_value(p)
            if problem:
                q.problem = problem
                return q
            chunks.append(([f"AU{n}" for n in au_vocab.extract(p) if f"AU{n}" in aus], value))
        values = [v for _, v in chunks]
        for i, (seg_aus, v) in enumerate(chunks):
            if v is None:
                later = [x for x in values[i + 1:] if x is not None]
                earlier = [x for x in values[:i] if x is not None]
                v = later[0] if later else (earlier[-1] if earlier else 0.0)
            for a in seg_aus:
                q.settings[a] = v
        q.kind = "what_if"
        return q
    if _WHY.search(low):
        q.kind = "why"
        return q
    if known:
        q.kind = "au"
        return q
    if _MATTERS.search(low) or (cls and re.search(r"\b(which|what)\b.*\baus?\b", low)):
        q.kind = "matters"
    return q
