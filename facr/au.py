"""The action-unit vocabulary: FACS ids, names, face regions, and the one AU parser.

Every AU spelling a user meets goes through :func:`parse` (one string, one AU) or
:func:`extract` (free text, every AU it names). Canonical names are ``AU<int>``
(``AU4``, ``AU12``, ``AU43``).

>>> parse("AU04_r"), parse("au 12"), parse("Lip Corner Puller"), parse("1. AU4 - Brow Lowerer")
(4, 12, 12, 4)
>>> canonical("AU04")
'AU4'
>>> extract("1. AU4 - Brow Lowerer: brows down. AU 12 (Lip Corner Puller), and the cheek raiser")
[4, 12, 6]
>>> extract("AU6, 1 and 2; AUs 4 and 15 at 0.93, 2 eyes")
[6, 1, 2, 4, 15]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Union

import numpy as np

from facr.errors import UnknownAUError

# z_k ≥ ACTIVE: AU k is present. One threshold for every reader of z — the verbalizer's gate and
# plans, the audits' active and named-inactive sets, the chat, the front ends, AU F1.
ACTIVE = 0.5

__all__ = [
    "ActionUnit",
    "AUS",
    "MAIN_AUS",
    "Mention",
    "PSPI_AUS",
    "REGIONS",
    "canonical",
    "extract",
    "info",
    "is_au",
    "listed",
    "mentions",
    "parse",
    "phrase",
    "pspi",
    "sort_aus",
]


@dataclass(frozen=True)
class ActionUnit:
    """One FACS main action unit."""

    number: int
    name: str
    region: str
    aliases: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """The canonical name, ``AU<int>``."""
        return f"AU{self.number}"


# FACS main codes (Ekman, Friesen & Hager, FACS 2002) with the names users meet in
# datasets and in MLLM outputs; aliases are older (1978) or common variant names.
_TABLE: tuple[ActionUnit, ...] = (
    ActionUnit(1, "Inner Brow Raiser", "brows"),
    ActionUnit(2, "Outer Brow Raiser", "brows"),
    ActionUnit(4, "Brow Lowerer", "brows"),
    ActionUnit(5, "Upper Lid Raiser", "eyes"),
    ActionUnit(6, "Cheek Raiser", "cheeks", ("Cheek Raiser and Lid Compressor",)),
    ActionUnit(7, "Lid Tightener", "eyes"),
    ActionUnit(9, "Nose Wrinkler", "nose"),
    ActionUnit(10, "Upper Lip Raiser", "mouth"),
    ActionUnit(11, "Nasolabial Deepener", "cheeks", ("Nasolabial Furrow Deepener",)),
    ActionUnit(12, "Lip Corner Puller", "mouth"),
    ActionUnit(13, "Sharp Lip Puller", "cheeks", ("Cheek Puffer",)),
    ActionUnit(14, "Dimpler", "mouth"),
    ActionUnit(15, "Lip Corner Depressor", "mouth"),
    ActionUnit(16, "Lower Lip Depressor", "mouth"),
    ActionUnit(17, "Chin Raiser", "chin"),
    ActionUnit(18, "Lip Pucker", "mouth", ("Lip Puckerer",)),
    ActionUnit(20, "Lip Stretcher", "mouth"),
    ActionUnit(22, "Lip Funneler", "mouth"),
    ActionUnit(23, "Lip Tightener", "mouth"),
    ActionUnit(24, "Lip Pressor", "mouth"),
    ActionUnit(25, "Lips Part", "mouth", ("Lips Apart", "Lip Part", "Lips Parted")),
    ActionUnit(26, "Jaw Drop", "jaw"),
    ActionUnit(27, "Mouth Stretch", "jaw"),
    ActionUnit(28, "Lip Suck", "mouth"),
    ActionUnit(41, "Lid Droop", "eyes"),
    ActionUnit(42, "Slit", "eyes"),
    ActionUnit(43, "Eyes Closed", "eyes", ("Eye Closure", "Eyes Closure", "Eye Closed")),
    ActionUnit(44, "Squint", "eyes"),
    ActionUnit(45, "Blink", "eyes"),
    ActionUnit(46, "Wink", "eyes"),
)

AUS: dict[int, ActionUnit] = {au.number: au for au in _TABLE}
"""Every FACS main action unit, by number."""

MAIN_AUS: tuple[int, ...] = tuple(AUS)
"""The numbers of the FACS main action units, ascending."""

PSPI_AUS: tuple[int, ...] = (4, 6, 7, 9, 10, 43)
"""The six AUs of the Prkachin–Solomon pain intensity (Prkachin & Solomon, 2008)."""

REGIONS: tuple[str, ...] = ("brows", "eyes", "cheeks", "nose", "mouth", "chin", "jaw")
"""Face regions, top to bottom."""

AULike = Union[str, int]

# "AU4", "AU04", "au 4", "AU-4", "AU_04", "AU04_r", "AU04_c", "AU12R" ...
_AU_TOKEN = re.compile(r"(?<![A-Za-z0-9])AU\s*[-_#:.]?\s*(\d{1,3})(?![0-9])(?:_[rc](?![A-Za-z0-9]))?", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"^\s*0*(\d{1,3})\s*$")
_LIST_PREFIX = re.compile(r"^\s*(?:\(?\d+[.)]|[-*•])\s+")


def _normalise(text: str) -> str:
    words = re.sub(r"[^a-z0-9]+", " ", text.lower()).split()
    if words and words[0] in ("the", "a", "an"):
        words = words[1:]
    return " ".join(words)


_BY_NAME: dict[str, int] = {}
for _au in _TABLE:
    for _n in (_au.name, *_au.aliases):
        _BY_NAME[_normalise(_n)] = _au.number

# Longest names first so "Lip Corner Puller" wins over a shorter overlapping name.
_NAME_PATTERN = re.compile(
    r"(?<![a-z0-9])(?:"
    + "|".join(
        r"\s+".join(map(re.escape, n.split())) + r"s?"
        for n in sorted(_BY_NAME, key=len, reverse=True)
    )
    + r")(?![a-z0-9])",
    re.IGNORECASE,
)


def _checked(number: int, text: object) -> int:
    if number not in AUS:
        raise UnknownAUError(str(text), f"not a FACS main action unit: {text!r} (AU{number})")
    return number


def parse(text: AULike) -> int:
    """Map one AU spelling to its number.

    Accepts ``AU4``, ``AU04``, ``au 4``, ``AU04_r`` / ``AU04_c`` (OpenFace), ``AU12 (Lip Corner
    Puller)``, ``Lip Corner Puller``, ``1. AU4 - Brow Lowerer``, a bare ``4`` and an ``int``.
    Raises :class:`~facr.errors.UnknownAUError` naming the text when it is not exactly one
    FACS main action unit.
    """
    if isinstance(text, (bool, np.bool_)):
        raise UnknownAUError(str(text))
    if isinstance(text, (int, np.integer)):
        return _checked(int(text), text)
    if not isinstance(text, str):
        raise UnknownAUError(repr(text), f"not a FACS action unit: {text!r} (expected a string)")
    tokens = {int(m.group(1)) for m in _AU_TOKEN.finditer(text)}
    if len(tokens) > 1:
        names = ", ".join(f"AU{n}" for n in sorted(tokens))
        raise UnknownAUError(text, f"names several action units ({names}), expected one: {text!r}")
    if tokens:
        number = _checked(tokens.pop(), text)
        rest = _normalise(_LIST_PREFIX.sub("", _AU_TOKEN.sub(" ", text)))
        named = {n for m in _NAME_PATTERN.finditer(rest) if (n := _name_number(m.group(0))) is not None}
        if named - {number}:
            other = ", ".join(AUS[n].name for n in sorted(named - {number}))
            raise UnknownAUError(text, f"AU{number} and the name {other!r} disagree: {text!r}")
        return number
    bare = _BARE_NUMBER.match(text)
    if bare:
        return _checked(int(bare.group(1)), text)
    number = _name_number(_LIST_PREFIX.sub("", text))
    if number is not None:
        return number
    raise UnknownAUError(text)


def is_au(text: AULike) -> bool:
    """True when :func:`parse` accepts ``text``."""
    try:
        parse(text)
    except UnknownAUError:
        return False
    return True


_CANONICAL: dict[str, str] = {f"AU{n}": f"AU{n}" for n in AUS}


def canonical(text: AULike) -> str:
    """The canonical name of an AU spelling: ``canonical("AU04_r") == "AU4"``."""
    if isinstance(text, str):
        hit = _CANONICAL.get(text)  # already canonical: the hot path of loading millions of frames
        if hit is not None:
            return hit
    return f"AU{parse(text)}"


def info(text: AULike) -> ActionUnit:
    """The :class:`ActionUnit` (number, FACS name, region) an AU spelling names."""
    return AUS[parse(text)]


def phrase(text: AULike) -> str:
    """An AU as prose names it: ``phrase("AU12") == "AU12 (lip corner puller)"``."""
    return f"{canonical(text)} ({info(text).name.lower()})"


def listed(aus: Iterable[AULike]) -> str:
    """One or more AUs in prose (:func:`phrase`), the last joined by "and": ``listed(["AU6", "AU12"]) ==
    "AU6 (cheek raiser) and AU12 (lip corner puller)"``; three or more take commas before it."""
    parts = [phrase(a) for a in aus]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def sort_aus(aus: Iterable[AULike]) -> list[str]:
    """Canonical names of ``aus``, deduplicated, in ascending AU number."""
    return [f"AU{n}" for n in sorted({parse(a) for a in aus})]


def _name_number(match_text: str) -> int | None:
    key = _normalise(match_text)
    if key in _BY_NAME:
        return _BY_NAME[key]
    if key.endswith("s") and key[:-1] in _BY_NAME:
        return _BY_NAME[key[:-1]]
    return None


@dataclass(frozen=True)
class Mention:
    """One place where text names an AU: ``kind`` is ``"token"`` (``AU12``, ``AU 12``), ``"number"``
    (a bare number continuing an AU list: the ``1`` of "AU6, 1 and 2", the ``4`` of "AUs 4 and 15")
    or ``"name"`` (a FACS name standing alone). ``described`` is the span of the FACS name written
    right beside a token or number ("AU12 (Lip Corner Puller)"), ``described_as`` the AU that name
    is, if any."""

    start: int
    end: int
    number: int
    kind: str
    described: tuple[int, int] | None = None
    described_as: int | None = None


# A list of AUs as a person reads it: after an AU token (or "AUs" / "AUS"), items joined by
# commas, "and", "or", "/", "+" (FACS writes 6+12); an item may carry its name in parentheses.
_AUS_HEAD = re.compile(r"(?<![A-Za-z0-9])AUs\s*:?\s*(\d{1,3})(?![0-9])(?![.,]\d)", re.IGNORECASE)
_ITEM_NOTE = re.compile(r"\s*\([^()]{0,60}\)")
_LIST_SEP = re.compile(r"\s*(?:[,;]\s*(?:and\s+|or\s+|&\s*)?|/\s*|&\s*|\+\s*|\s(?:and|or|nor)\s+)", re.IGNORECASE)
_LIST_NUMBER = re.compile(r"(\d{1,3})(?![0-9])(?![.,]\d)")
# What may follow a bare number for it to be a list item: more list, a parenthesis, the end of a
# clause or a verb or preposition that goes on with the sentence ("AUs 4 and 15 are raised"); not a
# noun ("2 eyes"), a decimal ("0.93"), a unit ("12%"), or a numbered-list index ("2. AU4").
_LIST_FOLLOW = re.compile(r"(?=\s*(?:[,;/&+!?:()]|\.(?!\d)|$)|\s+(?:and|or|nor|are|is|was|were|with|at|in|on|to|for|"
                          r"which|that|these|those|so|shows?|suggests?|indicates?|points?)\b)", re.IGNORECASE)
_LIST_INDEX = re.compile(r"[.)]\s+(?:AU|\d)", re.IGNORECASE)


def _list_numbers(text: str, heads: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(start, end, number) of every bare number that continues an AU list begun at one of ``heads``
    (the spans of AU tokens and "AUs <n>" heads)."""
    found = []
    for _, pos in heads:
        if text.startswith(">", pos):  # the verbalizer's own AU token, "<AU15>", read before clean-up
            pos += 1
        while True:
            note = _ITEM_NOTE.match(text, pos)
            sep = _LIST_SEP.match(text, note.end() if note else pos)
            if sep is None or sep.end() == (note.end() if note else pos):
                break
            pos = sep.end()
            if _AU_TOKEN.match(text, pos):  # the list goes on from that token, a head of its own
                break
            number = _LIST_NUMBER.match(text, pos)
            if number is None or not _LIST_FOLLOW.match(text, number.end()) or _LIST_INDEX.match(text, number.end()):
                break
            found.append((number.start(), number.end(), int(number.group(1))))
            pos = number.end()
    return found


def _attached(text: str, name: tuple[int, int], item: tuple[int, int]) -> bool:
    """True when a FACS name is written right beside a numbered item (only punctuation between)."""
    (ns, ne), (s, e) = name, item
    return bool((0 <= ns - e < 6 and re.fullmatch(r"[ \t(\[\-–—:=]*", text[e:ns]))
                or (0 <= s - ne < 6 and re.fullmatch(r"[ \t(\[\-–—:=]*", text[ne:s])))


def mentions(text: str) -> list[Mention]:
    """Every place ``text`` names a FACS main AU, in order: the reading :func:`extract` dedupes.

    Numbered mentions (``AU4``, ``AU 12``, ``AU06``), bare numbers continuing a list that began
    with an AU token ("AU6, 1 and 2" names AU6, AU1 and AU2; "AUs 4 and 15" names AU4 and AU15)
    and bare FACS names ("the cheek raiser") count. A name written right beside a number ("AU12
    (Lip Corner Puller)", "AU4 - Brow Lowerer") describes that number and is not a mention of its
    own, even if it disagrees: the number wins, as EmoLA's own scorer reads it. Numbers that are not
    FACS main AUs are ignored; a number outside an AU list ("0.93", "2 eyes") is not an AU.
    """
    if not isinstance(text, str):
        raise TypeError(f"mentions() takes a string, got {type(text).__name__}")
    tokens = [(m.start(), m.end(), int(m.group(1)), "token") for m in _AU_TOKEN.finditer(text)]
    heads = [(m.start(), m.end(), int(m.group(1)), "number") for m in _AUS_HEAD.finditer(text)]
    listed = [(s, e, n, "number") for s, e, n in _list_numbers(text, [(s, e) for s, e, _, _ in tokens + heads])]
    items = sorted(tokens + heads + listed)
    notes: dict[int, tuple[tuple[int, int], int | None]] = {}
    names = []
    for m in _NAME_PATTERN.finditer(text):
        n = _name_number(m.group(0))
        if n is None:
            continue
        owner = next((i for i, (s, e, _, _) in enumerate(items) if _attached(text, m.span(), (s, e))), None)
        if owner is None:
            names.append(Mention(m.start(), m.end(), n, "name"))
        else:
            notes.setdefault(owner, (m.span(), n))
    numbered = [Mention(s, e, n, kind, *notes.get(i, (None, None))) for i, (s, e, n, kind) in enumerate(items)]
    return sorted((m for m in numbered + names if m.number in AUS), key=lambda m: m.start)


def extract(text: str) -> list[int]:
    """Every FACS main AU that free text names, each once, in order of first mention (the places
    are :func:`mentions`: AU tokens, bare numbers in an AU list, FACS names). Negation ("no AU4")
    is not interpreted.
    """
    if not isinstance(text, str):
        raise TypeError(f"extract() takes a string, got {type(text).__name__}")
    return list(dict.fromkeys(m.number for m in mentions(text)))


def named(text: str | None) -> list[str]:
    """The AUs a free text names, canonical ("AU12"), each once, in order (:func:`extract`)."""
    return [f"AU{n}" for n in extract(text or "")]


def pspi(intensities: Mapping[AULike, "float | np.ndarray"]):
    """Prkachin–Solomon pain intensity: AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43.

    ``intensities`` maps AU spellings to intensities (0–5; AU43 is 0/1) — scalars or
    equally shaped arrays, which gives one PSPI per element. AUs not listed are absent
    (intensity 0), as in UNBC-McMaster's FACS files, which list only the coded AUs.
    """
    values: dict[int, np.ndarray] = {}
    for key, value in intensities.items():
        n = parse(key)
        if n in values:
            raise ValueError(f"pspi(): AU{n} is given twice ({key!r})")
        arr = np.asarray(value, dtype=float)
        if np.any(np.isnan(arr)) or np.any(arr < 0):
            raise ValueError(f"pspi(): intensity of AU{n} must be a number >= 0, got {value!r}")
        values[n] = arr

    def get(n: int):
        return values.get(n, 0.0)

    total = get(4) + np.maximum(get(6), get(7)) + np.maximum(get(9), get(10)) + get(43)
    return float(total) if np.ndim(total) == 0 else total
