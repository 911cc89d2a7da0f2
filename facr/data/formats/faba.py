"""FABA-Instruct, the instruction data released with EmoLA (Li et al., ECCV 2024), in its released layout.

::

    <root>/                                   the FABAInstruct folder (EmoLA keeps it at data/FABAInstruct)
      train/train_au_anno.json                a JSON list of items
      train/train_emotion_anno.json
      train/images/<source>/...jpg            e.g. images/AffectNet/AffectNet_v2/1194/<hash>.jpg
      train/landmarks/<source>/...npy         InsightFace 2d106det features (not read here)
      eval/eval_au_anno.json, eval/eval_emotion_anno.json, eval/images/, eval/landmarks/

An item is ``{"source": "AffectNet", "id": "AffectNet/AffectNet_v2/1194/<hash>",
"image": "FABAInstruct/train/images/AffectNet/AffectNet_v2/1194/<hash>.jpg",
"landmark": "FABAInstruct/train/landmarks/....npy", "conversations": [{"from": "human", "value":
"...<image>"}, {"from": "gpt", "value": "<GPT-4V description>"}]}``; ``image`` and ``landmark``
are relative to the folder that holds ``FABAInstruct/``. Eval items also carry ``"label"``
(AU task: the present AUs, ``"4, 9, 15"``; emotion task: an index into :data:`FABA_EMOTIONS`
or the name) and ``"gpt4"`` (the reference description), which EmoLA's FABA-Bench scorer reads.

Labels: an item with ``label`` gets it (``meta["au_source"] = "label"``). Train items have no
label field; their AUs are the FABA AUs their GPT-4V description names, read with
:func:`facr.au.extract` (``meta["au_source"] = "gpt4v-text"``; negations such as "no AU4" are
not interpreted, as in EmoLA's own scorer), and their emotion is ``None`` (the description is
kept in ``meta["emotion_text"]``). AU presence covers :data:`FABA_AUS`: 1 if named, else 0;
AUs outside that set are not coded.

One record per image and split: an image in both the AU and the emotion file is one record.
``train`` -> split ``train``, ``eval`` (FABA-Bench) -> split ``test``. FABA has no identity
labels, so the subject is the item ``id``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from facr import au as au_vocab
from facr.data.formats import LOADERS
from facr.data.formats._common import Loading, canonical_emotion, inside
from facr.data.records import FaceRecord, LoadResult
from facr.errors import DataFormatError, UnknownAUError
from facr.utils import JSONTextError, loads_json

FORMAT = "faba"

FABA_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 16, 17, 20, 23, 24, 25, 26, 27, 43)
"""The AUs FABA-Instruct annotates (EmoLA's ``AUIndicesMap`` for FABA)."""

FABA_EMOTIONS: tuple[str, ...] = ("happiness", "sadness", "surprise", "anger", "neutral", "disgust", "fear")
"""FABA's emotion order: an integer emotion label indexes this tuple (EmoLA's ``emotions2num``)."""

SPLITS = {"train": "train", "eval": "test"}
TASKS = ("au", "emotion")


@dataclass
class FabaItem:
    """What FABA says about one image in one split (AU and emotion items merged)."""

    split: str
    id: str
    source: str | None
    image: str
    file: Path
    landmark: str | None = None
    au_presence: dict[str, int] | None = None
    au_source: str | None = None
    emotion: str | None = None
    meta: dict = field(default_factory=dict)


def find_root(path: str | os.PathLike) -> Path:
    """The FABAInstruct folder: ``path`` itself, or ``path/FABAInstruct`` when that exists."""
    path = Path(os.path.abspath(path))
    return path / "FABAInstruct" if (path / "FABAInstruct").is_dir() else path


def annotation_files(root: Path) -> list[tuple[str, str, Path]]:
    """``(split, task, file)`` for every annotation file present under the FABAInstruct folder."""
    return [(split, task, root / folder / f"{folder}_{task}_anno.json")
            for folder, split in SPLITS.items() for task in TASKS
            if (root / folder / f"{folder}_{task}_anno.json").is_file()]


def read_items(loading: Loading, root: Path) -> dict[tuple[str, str], FabaItem]:
    """Every item of every annotation file under ``root``, merged per (split, id)."""
    if not root.is_dir():
        raise DataFormatError(root, "no such folder")
    files = annotation_files(root)
    if not files:
        raise DataFormatError(root, "no train/train_au_anno.json, train/train_emotion_anno.json, "
                                    "eval/eval_au_anno.json or eval/eval_emotion_anno.json (expected the "
                                    "FABA-Instruct release layout)")
    items: dict[tuple[str, str], FabaItem] = {}
    for split, task, path in files:
        text = loading.read_text(path)
        if text is None:
            continue
        try:
            doc = loads_json(text)
        except JSONTextError as exc:
            loading.issue(path, exc.line or 1, str(exc))
            continue
        if not isinstance(doc, list):
            loading.issue(path, 1, f"expected a JSON list of items, got {type(doc).__name__}")
            continue
        seen: set[str] = set()
        for index, raw in enumerate(doc):
            parsed = _item(loading, path, index, raw, split, task)
            if parsed is None:
                continue
            item_id, fields = parsed
            if item_id in seen:
                loading.issue(path, None, f"item {index}: id {item_id!r} appears twice")
                continue
            seen.add(item_id)
            item = items.setdefault((split, item_id), FabaItem(split, item_id, fields["source"], fields["image"],
                                                                path, fields["landmark"]))
            if task == "au":
                item.au_presence, item.au_source = fields["au_presence"], fields["au_source"]
                item.meta["au_text"] = fields["text"]
            else:
                item.emotion = fields["emotion"]
                item.meta["emotion_text"] = fields["text"]
    return items


def _item(loading: Loading, path: Path, index: int, raw, split: str, task: str):
    where = f"item {index}"
    if not isinstance(raw, dict):
        loading.issue(path, None, f"{where}: expected an object, got {type(raw).__name__}")
        return None
    image = raw.get("image")
    if not isinstance(image, str) or not image:
        loading.issue(path, None, f"{where}: no 'image' path")
        return None
    item_id = str(raw.get("id") or os.path.splitext(image.split("/images/", 1)[-1])[0])
    where = f"item {index} ({item_id})"
    text = raw.get("gpt4")
    if text is None:
        turns = raw.get("conversations") or []
        text = next((t.get("value") for t in turns if isinstance(t, dict) and t.get("from") == "gpt"), None)
    if text is not None and not isinstance(text, str):
        loading.issue(path, None, f"{where}: the description must be a string")
        return None
    fields = {"source": raw.get("source"), "image": image, "landmark": raw.get("landmark"), "text": text}
    label = raw.get("label")
    try:
        if task == "au":
            if label is not None:
                named, fields["au_source"] = _au_label(label), "label"
            elif text is not None:
                named, fields["au_source"] = set(au_vocab.extract(text)), "gpt4v-text"
            else:
                raise ValueError("neither a 'label' nor a GPT-4V description")
            fields["au_presence"] = {f"AU{n}": int(n in named) for n in FABA_AUS}
        else:
            fields["emotion"] = None if label is None else _emotion_label(label)
    except (ValueError, UnknownAUError) as exc:
        loading.issue(path, None, f"{where}: label {label!r}: {exc}")
        return None
    return item_id, fields


def _au_label(label) -> set[int]:
    """The AU numbers of an AU label: ``"4, 9, 15"``, ``"AU4, AU9"`` or a list of either."""
    tokens = label if isinstance(label, list) else str(label).split(",")
    return {au_vocab.parse(t.strip() if isinstance(t, str) else t) for t in tokens if str(t).strip()}


def _emotion_label(label) -> str:
    if isinstance(label, int) or (isinstance(label, str) and label.strip().isdigit()):
        index = int(label)
        if not 0 <= index < len(FABA_EMOTIONS):
            raise ValueError(f"emotion index must be 0-{len(FABA_EMOTIONS) - 1} ({', '.join(FABA_EMOTIONS)})")
        return FABA_EMOTIONS[index]
    return canonical_emotion(label)


def resolve_image(root: Path, image: str) -> Path:
    """The file an item's ``image`` names: relative to the folder holding FABAInstruct/, or to it,
    whichever exists inside FABAInstruct/; else the first reading, for
    :meth:`Loading.check_image` to report as missing or outside the folder."""
    candidates = [root.parent / image, root / image]
    return next((c for c in candidates if inside(c, root) and c.is_file()), candidates[0])


def load(root: str | os.PathLike, *, strict: bool = False, verify_images: bool = False) -> LoadResult:
    """Read FABA-Instruct at ``root`` (the FABAInstruct folder, or the folder holding it)."""
    loading = Loading(FORMAT, root, strict)
    faba_root = find_root(loading.root)
    records: list[FaceRecord] = []
    for (split, item_id), item in sorted(read_items(loading, faba_root).items()):
        image = resolve_image(faba_root, item.image)
        if not loading.check_image(image, item.file, None, verify_images, split=split, base=faba_root):
            continue
        meta = {"id": item_id, "source": item.source, "landmark": item.landmark, **item.meta}
        if item.au_source:
            meta["au_source"] = item.au_source
        records.append(FaceRecord(
            image=str(image), dataset=FORMAT, subject=item_id, split=split, emotion=item.emotion,
            au_presence=item.au_presence or {}, meta=meta,
        ))
    return loading.result(records)


LOADERS.register("faba", load)
