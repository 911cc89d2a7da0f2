"""The generations file: what another reasoner said about each face, one JSON object per line.

::

    {"image": "test/00012.png", "output": "1. AU4 - Brow Lowerer: ...", "emotion_output": "...",
     "emotion": "anger", "aus": ["AU4", "AU7"], "source": "..."}

* ``image`` (required): the face, as a record key of the dataset it came from (:func:`record_key`:
  the path relative to the dataset root, an absolute path under it, or ``<split>/<index>.png`` for
  the synthetic benchmark);
* ``output``: the answer to EmoLA's AU question (:data:`PROMPTS` ``au``);
* ``emotion_output`` (optional): the answer to its emotion question;
* ``emotion`` / ``aus`` (optional): labels — the labelled emotion (any spelling facr knows, or
  EmoLA's integer 0-6) and the labelled active AUs (a list or a comma-separated string, any AU
  spelling; ``[]`` or ``""``: none active). A line without labels takes them from ``--data``;
* any other key (``source``, ``model``) is kept and ignored.

Written by ``facr emola generate`` (:func:`write_generations`, atomically) and read by
``facr audit --model emola`` (:func:`read_generations`; a bad line is a one-line error naming the
file and the line).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from facr import au as au_vocab
from facr.errors import FacrError, UnknownAUError
from facr.utils import loads_json

# EmoLA's two questions, verbatim (emollava/eval/eval_FABA.py).
PROMPTS = {"au": "What AUs are conveyed by this face?", "emotion": "What emotions are conveyed by this face?"}
# EmoLA's integer emotion labels (eval_FABA.py, emotions2num).
EMOLA_EMOTIONS = ("happiness", "sadness", "surprise", "anger", "neutral", "disgust", "fear")


@dataclass
class Generation:
    """One line of a generations file (labels canonical; ``None`` = not given on the line)."""

    image: str
    output: str | None
    emotion_output: str | None = None
    emotion: str | None = None
    aus: list[str] | None = None
    line: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        return self.emotion is not None or self.aus is not None


def parse_emotion_label(value: Any, where: str) -> str:
    """A labelled emotion: a name facr knows, ``pain`` / ``no_pain``, or EmoLA's integer 0-6."""
    from facr.data.formats._common import canonical_emotion

    if isinstance(value, bool):
        raise FacrError(where, f"emotion must be a name or EmoLA's integer 0-6, got {value!r}")
    if isinstance(value, int):
        if 0 <= value < len(EMOLA_EMOTIONS):
            return EMOLA_EMOTIONS[value]
        raise FacrError(where, f"emotion {value} is not one of EmoLA's integer labels 0-6")
    if not isinstance(value, str):
        raise FacrError(where, f"emotion must be a string, got {type(value).__name__}")
    key = value.strip().lower().replace(" ", "_")
    if key in ("pain", "no_pain"):
        return key
    try:
        return canonical_emotion(value)
    except ValueError as exc:
        raise FacrError(where, str(exc)) from None


def parse_au_label(value: Any, where: str) -> list[str]:
    """Labelled active AUs: a list of AU spellings, or a string of them separated by commas
    (EmoLA writes ``"4, 9, 15"``); canonical ids in AU order."""
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,;]", value) if p.strip()]
    elif isinstance(value, list):
        parts = value
    else:
        raise FacrError(where, f"aus must be a list or a comma-separated string, got {type(value).__name__}")
    try:
        return au_vocab.sort_aus(parts)
    except UnknownAUError as exc:
        raise FacrError(where, f"aus: {exc.message}") from None


def read_generations(path: str | os.PathLike) -> list[Generation]:
    """Every line of a generations file, checked (blank lines are skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FacrError(path, "no such generations file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FacrError(path, f"cannot read: {exc}") from None
    out = []
    # Lines end at "\n" only: str.splitlines would also cut at U+2028 and other separators that a
    # model's text may hold unescaped (write_generations keeps non-ASCII as is).
    for n, raw in enumerate(text.split("\n"), 1):
        if not raw.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = loads_json(raw)
        except ValueError as exc:
            raise FacrError(where, f"not a JSON object: {exc}") from None
        if not isinstance(obj, dict):
            raise FacrError(where, f"expected a JSON object, got {type(obj).__name__}")
        image = obj.pop("image", None)
        if not isinstance(image, str) or not image:
            raise FacrError(where, "missing \"image\" (the face's path or record key)")
        texts = {}
        for key in ("output", "emotion_output"):
            value = obj.pop(key, None)
            if value is not None and not isinstance(value, str):
                raise FacrError(where, f"{key!r} must be a string, got {type(value).__name__}")
            texts[key] = value
        if texts["output"] is None and texts["emotion_output"] is None:
            raise FacrError(where, "no \"output\" (the answer to the AU question) and no \"emotion_output\"")
        emotion = obj.pop("emotion", None)
        aus = obj.pop("aus", None)
        out.append(Generation(image, texts["output"], texts["emotion_output"],
                              None if emotion is None else parse_emotion_label(emotion, where),
                              None if aus is None else parse_au_label(aus, where), n, obj))
    if not out:
        raise FacrError(path, "no generations (the file is empty)")
    return out


def write_generations(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write ``rows`` (dicts with at least ``image`` and ``output``) as JSONL, atomically; returns
    the number of lines."""
    from facr.utils import atomic_path

    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def generation_row(key: str, record, *, output: str | None = None, emotion_output: str | None = None,
                   source: str = "") -> dict:
    """One line of a generations file for ``record``: its answers, ``source``, and its labels where
    it has them (``emotion``; ``aus`` only when the record codes at least one AU)."""
    row: dict[str, Any] = {"image": key}
    if output is not None:
        row["output"] = output
    if emotion_output is not None:
        row["emotion_output"] = emotion_output
    row["source"] = source
    if record.emotion is not None:
        row["emotion"] = record.emotion
    if any(v is not None for v in record.au_presence.values()):
        row["aus"] = record.active_aus()
    return row


# ------------------------------------------------------------------ records
def record_key(record, root: str | os.PathLike | None) -> str:
    """The string that names ``record`` in a generations file.

    The synthetic benchmark: ``<split>/<index:05d>.png`` (the name ``facr emola generate`` gives
    its PNG). A file dataset: the image path relative to ``root`` (POSIX separators), or the
    absolute path when it is not under ``root``. Frames without an image file:
    ``<video or subject>/<frame>``.
    """
    if record.dataset == "synth" and "index" in record.meta:
        return f"{record.split}/{int(record.meta['index']):05d}.png"
    if isinstance(record.image, str):
        p = Path(record.image)
        if root is not None:
            try:
                return p.resolve().relative_to(Path(root).resolve()).as_posix()
            except ValueError:
                pass
        return p.as_posix()
    return f"{record.video or record.subject}/{record.frame}"


def normalise_key(image: str, root: str | os.PathLike | None) -> str:
    """A generations line's ``image`` in the form :func:`record_key` gives (absolute paths under
    ``root`` become relative; ``./`` and backslashes are tidied)."""
    text = image.replace("\\", "/")
    p = Path(text)
    if p.is_absolute() and root is not None:
        try:
            return p.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            return p.as_posix()
    return Path(text).as_posix()


def image_of(record):
    """The record's face as an RGB ``PIL.Image`` (an array, a path, or the benchmark's PNG bytes)."""
    import io

    import numpy as np
    from PIL import Image

    if isinstance(record.image, np.ndarray):
        return Image.fromarray(record.image.astype(np.uint8)).convert("RGB")
    if isinstance(record.image, str):
        try:
            with Image.open(record.image) as im:
                return im.convert("RGB")
        except OSError as exc:
            raise FacrError(record.image, f"cannot read the image: {exc}") from None
    png = record.meta.get("png")
    if png is not None:
        with Image.open(io.BytesIO(png)) as im:
            return im.convert("RGB")
    raise FacrError(record_key(record, None), "this record has no image (annotations only)")


# ------------------------------------------------------------------ emotions in free text
_EMOTION_WORDS = {
    "neutral": "neutral", "neutrality": "neutral", "expressionless": "neutral", "impassive": "neutral",
    "happiness": "happiness", "happy": "happiness", "joy": "happiness", "joyful": "happiness",
    "cheerful": "happiness", "glad": "happiness", "delighted": "happiness", "amused": "happiness",
    "sadness": "sadness", "sad": "sadness", "sorrow": "sadness", "sorrowful": "sadness", "unhappy": "sadness",
    "unhappiness": "sadness", "grief": "sadness", "melancholy": "sadness",
    "surprise": "surprise", "surprised": "surprise", "astonished": "surprise", "astonishment": "surprise",
    "amazed": "surprise", "amazement": "surprise", "shocked": "surprise",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear", "frightened": "fear",
    "terrified": "fear", "terror": "fear",
    "anger": "anger", "angry": "anger", "annoyed": "anger", "irritated": "anger", "furious": "anger",
    "rage": "anger", "annoyance": "anger", "irritation": "anger",
    "disgust": "disgust", "disgusted": "disgust", "revulsion": "disgust", "repulsed": "disgust",
    "contempt": "contempt", "contemptuous": "contempt", "scorn": "contempt", "disdain": "contempt",
    "pain": "pain", "painful": "pain", "grimace": "pain", "grimacing": "pain",
}
_NEGATIONS = {"not", "no", "never", "without", "neither", "nor", "lack", "lacks", "absence", "absent", "nothing",
              "isn't", "aren't", "doesn't", "don't", "wasn't", "cannot", "can't", "hardly"}
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def extract_emotion(text: str | None, classes: Iterable[str] | None = None) -> str | None:
    """The emotion a free-text answer states: the first emotion word (any of its common spellings)
    that is not negated within the three words before it ("not sad", "no sign of anger"), among
    ``classes`` when given. ``None`` when it states none.

    Unlike EmoLA's own reader, "no" inside "nose" or "know" negates nothing, and a text without
    a full stop is read like any other.
    """
    if not text:
        return None
    allowed = None if classes is None else set(classes)
    words = _WORD.findall(text.lower().replace("’", "'"))
    for i, w in enumerate(words):
        emotion = _EMOTION_WORDS.get(w)
        if emotion is None or (allowed is not None and emotion not in allowed):
            continue
        if any(p in _NEGATIONS or p.endswith("n't") for p in words[max(0, i - 3): i]):
            continue
        return emotion
    return None
