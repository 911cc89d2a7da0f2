"""The facr synthetic benchmark (``facr data synth``), as :class:`~facr.data.records.FaceRecord` objects.

::

    <root>/dataset_dict.json, train/ val/ test/   a 🤗 DatasetDict (datasets.load_from_disk reads it)
    <root>/config.json                            the generator config, AU and class orders, subjects
    <root>/graph.json                             the true graph (facr-graph, provenance "truth")

Every record has all benchmark AUs coded (presence and 0-5 intensity), the emotion, the PSPI
computed from the rendered intensities, the subject and its subject-disjoint split. ``image`` is
the decoded ``HxWx3`` uint8 array (``decode=False`` keeps the PNG bytes in
``meta["png"]`` and sets ``image=None``, for summaries that need no pixels; add
``verify_images=True`` to decode them once anyway, as a check). A PNG that does not decode is
reported with its split and row and the row skipped. ``meta`` holds
the benchmark's extras: ``index`` (the image's index in the generator), ``cue``/``cue_agrees``
(the background shortcut), ``pain_level`` (the latent pain process), ``pose``, ``unilateral``,
and the AU region masks (``au_masks``, ``mask_aus``, ``size``; unpack with
:func:`facr.data.synth.record_masks`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facr.data.formats import LOADERS
from facr.data.formats._common import Loading, inside
from facr.data.images import ImageReadError, open_image
from facr.data.records import SPLITS, FaceRecord, LoadResult
from facr.errors import DataFormatError

FORMAT = "synth"

_COLUMNS = ("image", "index", "subject", "frame", "split", "emotion", "au_presence", "au_intensity", "pspi",
            "pain_level", "cue", "cue_agrees", "unilateral", "pose", "au_masks")


def load(root: str | os.PathLike, *, strict: bool = False, splits: tuple[str, ...] | None = None,
         decode: bool = True, verify_images: bool = False) -> LoadResult:
    """Read a synth folder written by :func:`facr.data.synth.write_synth`.

    ``splits`` restricts to some of train / val / test. A row whose image does not decode (checked
    when ``decode`` or ``verify_images``) is reported (file = the split's folder, line = the row)
    and skipped, or fatal with ``strict``. Split and data-file names that would lead outside
    ``root`` are refused before 🤗 datasets opens anything.
    """
    import datasets

    from facr.data.synth import read_config

    loading = Loading(FORMAT, root, strict)
    root_path = loading.root
    if not root_path.is_dir():
        raise DataFormatError(root_path, "no such folder")
    doc = read_config(root_path)
    aus = list(doc["aus"])
    size = int(doc["config"]["size"])
    _check_layout(root_path)
    try:
        dd = datasets.load_from_disk(str(root_path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise DataFormatError(root_path, f"cannot load the dataset: {exc}") from None
    if not isinstance(dd, datasets.DatasetDict):
        raise DataFormatError(root_path, "expected a DatasetDict (train/val/test), found a single Dataset")
    wanted = splits or tuple(s for s in ("train", "val", "test") if s in dd)
    records: list[FaceRecord] = []
    for split in wanted:
        if split not in dd:
            raise DataFormatError(root_path, f"no split {split!r} (splits: {', '.join(dd)})")
        ds = dd[split]
        missing = [c for c in _COLUMNS if c not in ds.column_names]
        if missing:
            raise DataFormatError(root_path / split, f"missing column(s) {', '.join(missing)}")
        cols = ds.cast_column("image", datasets.Image(decode=False)).select_columns(list(_COLUMNS)).to_dict()
        presence = np.asarray(cols["au_presence"], dtype=np.int64).reshape(len(ds), -1)
        intensity = np.asarray(cols["au_intensity"], dtype=np.float64).reshape(len(ds), -1)
        if presence.shape[1] != len(aus) or intensity.shape[1] != len(aus):
            raise DataFormatError(root_path / split,
                                  f"AU vectors have {presence.shape[1]} entries, config.json lists {len(aus)} AUs")
        for i in range(len(ds)):
            png = cols["image"][i]["bytes"]
            image = None
            try:
                if decode:
                    image = np.asarray(open_image(png))
                elif verify_images:
                    open_image(png)
            except ImageReadError as exc:
                loading.issue(root_path / split, i + 1, f"image {exc.message}",
                              image=f"{root_path / split}:{i + 1}", split=split)
                continue
            meta = {
                "index": cols["index"][i], "cue": cols["cue"][i], "cue_agrees": bool(cols["cue_agrees"][i]),
                "pain_level": float(cols["pain_level"][i]), "pose": list(cols["pose"][i]),
                "unilateral": bool(cols["unilateral"][i]), "au_masks": cols["au_masks"][i], "mask_aus": aus,
                "size": size,
            }
            if not decode:
                meta["png"] = png
            records.append(FaceRecord(
                image=image, dataset=FORMAT, subject=cols["subject"][i], split=cols["split"][i],
                video=cols["subject"][i], frame=int(cols["frame"][i]), emotion=cols["emotion"][i],
                au_presence=dict(zip(aus, presence[i].tolist())), au_intensity=dict(zip(aus, intensity[i].tolist())),
                pspi=float(cols["pspi"][i]), meta=meta,
            ))
    return loading.result(records)


def _check_layout(root: Path) -> None:
    """Refuse a ``dataset_dict.json`` naming splits other than train / val / test, or a split's
    ``state.json`` naming data files outside its folder: 🤗 datasets would follow either path."""
    from facr.utils import loads_json

    def read(path: Path):
        try:
            return loads_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise DataFormatError(path, f"cannot read: {exc}") from None

    listed = read(root / "dataset_dict.json")
    names = listed.get("splits") if isinstance(listed, dict) else None
    if not isinstance(names, list) or not all(n in SPLITS for n in names):
        raise DataFormatError(root / "dataset_dict.json", f"'splits' must list some of {', '.join(SPLITS)}, "
                                                          f"got {names!r}")
    for name in names:
        state = read(root / name / "state.json")
        files = state.get("_data_files", []) if isinstance(state, dict) else []
        for entry in files if isinstance(files, list) else [files]:
            filename = entry.get("filename") if isinstance(entry, dict) else entry
            if not isinstance(filename, str) or not inside(root / name / filename, root / name):
                raise DataFormatError(root / name / "state.json",
                                      f"data file {filename!r} is not a file of the {name}/ folder (refused)")


LOADERS.register("synth", load)
