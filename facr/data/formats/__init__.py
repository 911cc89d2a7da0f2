"""Loaders for datasets in their released layouts; each returns a :class:`~facr.data.records.LoadResult`.

Every loader module defines ``load(root, *, strict=False, verify_images=False) -> LoadResult``.
With ``strict=False`` malformed rows and unreadable files are recorded in ``LoadResult.issues``
(file, line, problem) and skipped; with ``strict=True`` the first one raises
:class:`~facr.errors.DataFormatError`. An image path that leads outside the dataset (absolute,
``..``, a symlink pointing out) is refused unread (``_common.Loading.check_image``);
``verify_images`` also decodes every image (:func:`facr.data.images.open_image`).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from facr.registry import Registry

# Format name → its loader; each loader module registers its own, imported when its name is first asked for.
LOADERS: Registry[Callable] = Registry("dataset format", {
    "synth": "facr.data.formats.synth", "unbc": "facr.data.formats.unbc", "affwild2": "facr.data.formats.affwild2",
    "affectnet": "facr.data.formats.affectnet", "affectnet+faba": "facr.data.formats.affectnet",
    "faba": "facr.data.formats.faba", "disfa": "facr.data.formats.disfa", "bp4d": "facr.data.formats.bp4d",
    "rafdb": "facr.data.formats.rafdb"})
FORMATS = tuple(LOADERS.names())


def get_loader(fmt: str):
    """The ``load`` function of a format name (see ``FORMATS``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    return LOADERS[fmt]


def load(fmt: str, root: str | os.PathLike, *, strict: bool = False, **options):
    """Load ``root`` in format ``fmt``; ``options`` go to that format's loader (e.g. ``verify_images=True``
    for any, ``decode=False`` for ``synth``, ``threshold=`` for ``disfa``, ``images="original"`` for ``rafdb``)."""
    return get_loader(fmt)(root, strict=strict, **options)


# What each released layout has at its top (any one path is enough), in the order tried.
# "affectnet+faba" is never guessed: it is affectnet plus an explicit choice.
_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("unbc", ("Frame_Labels/PSPI",)),
    ("affwild2", ("annotations/EXPR_Classification_Challenge", "annotations/EXPR_Recognition_Challenge",
                  "annotations/AU_Detection_Challenge", "EXPR_Classification_Challenge",
                  "EXPR_Recognition_Challenge", "AU_Detection_Challenge")),
    ("affectnet", ("Manually_Annotated_file_lists",)),
    ("faba", ("train/train_au_anno.json", "train/train_emotion_anno.json", "eval/eval_au_anno.json",
              "eval/eval_emotion_anno.json", "FABAInstruct")),
    ("disfa", ("ActionUnit_Labels",)),
    ("bp4d", ("AUCoding/AU_OCC",)),
    ("rafdb", ("basic/EmoLabel/list_patition_label.txt", "EmoLabel/list_patition_label.txt")),
)


def resolve_format(root: str | os.PathLike, fmt: str | None = None, how: str = "pass --format") -> str:
    """``fmt`` when given, else the format :func:`detect_format` judges ``root`` to be. Neither: a
    :class:`~facr.errors.FacrError` naming ``root`` and ``how`` to say it (a flag, a config key)."""
    fmt = fmt or detect_format(root)
    if fmt is None:
        from facr.errors import FacrError

        raise FacrError(root, f"cannot tell the dataset format: {how} (one of {', '.join(FORMATS)})")
    return fmt


def detect_format(root: str | os.PathLike) -> str | None:
    """The format of the dataset folder ``root``, judged by its layout, or None when unknown.

    A facr synth dataset is a folder with ``config.json`` and ``dataset_dict.json``; the real
    datasets are recognised by the top folders of their released layouts (see each module).
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        return None
    if os.path.isfile(os.path.join(root, "config.json")) and os.path.isfile(os.path.join(root, "dataset_dict.json")):
        return "synth"
    for fmt, markers in _MARKERS:
        if any(os.path.exists(os.path.join(root, m)) for m in markers):
            return fmt
    return None
