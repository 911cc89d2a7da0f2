"""Bad data is reported, skipped with a count, or refused in one line: never a traceback, never a
file read from outside the data root.

Every dataset here is a copy of a committed fixture (tests/data/fixtures, make_fixtures.py) or a
tiny benchmark, broken in tmp_path: a truncated image, corrupt benchmark PNGs, CSV / JSON rows
naming ``/etc/passwd`` or ``../../x.png``, frames symlinked out of the dataset.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest
import yaml
from PIL import Image

from facr.data import images
from facr.data.formats import load
from facr.data.images import ImageReadError, drop_unusable, open_image
from facr.data.records import FaceRecord, LoadIssue, LoadResult
from facr.errors import DataFormatError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
AFFECTNET_IMAGES = Path("Manually_Annotated/Manually_Annotated_Images")
AFFECTNET_VAL = Path("Manually_Annotated_file_lists/validation.csv")
# the committed AffectNet fixture: 3 train records (neutral, happiness, contempt), 2 val, 1 malformed row
AFFECTNET_TRAIN = ("0/a1.jpg", "1/b2.png", "3/f6.jpg")


def fixture_copy(tmp_path: Path, fmt: str) -> Path:
    return Path(shutil.copytree(FIXTURES / fmt, tmp_path / fmt))


def truncate(path: Path) -> Path:
    """Keep the first half of an image file (what an interrupted copy leaves)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def outside_image(tmp_path: Path, name: str = "outside.png") -> Path:
    """A valid image outside every dataset root: it decodes, so only the root check keeps it out."""
    path = tmp_path / name
    Image.new("RGB", (16, 16), (200, 30, 30)).save(path)
    return path


def one_line(err: str) -> bool:
    return err.count("\n") == 1 and "Traceback" not in err


@pytest.fixture
def opened(monkeypatch):
    """Every path handed to PIL.Image.open, open() or os.open, resolved, from when the test calls
    ``opened.clear()`` (after writing its files)."""
    seen: list[str] = []

    def record(fn):
        def wrapper(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)):
                seen.append(os.path.realpath(file))
            return fn(file, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(Image, "open", record(Image.open))
    monkeypatch.setattr(builtins, "open", record(builtins.open))
    monkeypatch.setattr(io, "open", record(io.open))
    monkeypatch.setattr(os, "open", record(os.open))
    return seen


# ------------------------------------------------------------------ the bounded decode
def png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_an_image_larger_than_the_limit_is_refused_from_its_header(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(9000, 9000))  # 81 M pixels, 243 MB as RGB, from a file of ~60 bytes
    assert bomb.stat().st_size < 100 and 9000 * 9000 > images.MAX_PIXELS
    with pytest.raises(ImageReadError, match=r"too large to decode \(9000x9000"):
        open_image(bomb)
    assert Image.MAX_IMAGE_PIXELS <= images.MAX_PIXELS  # PIL itself bounded for code that opens directly
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header(30000, 30000))  # past PIL's own limit (twice ours): refused by PIL, reported
    assert images.image_problem(huge).startswith("too large to decode (Image size (900000000 pixels)")


def test_a_truncated_image_fails_at_decode_naming_the_file_not_mid_batch(tmp_path):
    from facr.data.torch_data import load_image

    broken = truncate(Path(shutil.copy(FIXTURES / "affectnet" / AFFECTNET_IMAGES / "1/b2.png", tmp_path / "b2.png")))
    with Image.open(broken) as im:
        assert im.size == (16, 16)  # the header is intact: only a full decode finds the damage
    assert "truncated" in images.image_problem(broken)
    with pytest.raises(ImageReadError) as err:
        load_image(str(broken), 32)  # what a training batch would meet: a facr error naming the file
    assert err.value.source == str(broken)


# ------------------------------------------------------------------ drop_unusable: count and threshold
def _files(tmp_path: Path, n: int, bad: set[int]) -> list[FaceRecord]:
    records = []
    for i in range(n):
        path = tmp_path / f"{i:02d}.png"
        Image.new("RGB", (8, 8), (i, 0, 0)).save(path)
        if i in bad:
            truncate(path)
        records.append(FaceRecord(image=str(path), dataset="x", subject=f"s{i}", split="train"))
    return records


def test_drop_unusable_counts_loader_refusals_of_the_splits_read_and_undecodable_images(tmp_path):
    records = _files(tmp_path, 19, bad={3})
    refused = [LoadIssue("list.csv", 7, "image /etc/passwd leads outside ...", image="/etc/passwd", split="train"),
               LoadIssue("list.csv", 9, "image ../x.png leads outside ...", image="../x.png", split="test"),
               LoadIssue("list.csv", 2, "face_width must be > 0")]  # a malformed row, not an image
    result = LoadResult("x", str(tmp_path), records, refused)
    (kept,), skipped = drop_unusable(result, [records], splits={"train"}, max_bad=0.15)
    assert [r.subject for r in kept] == [f"s{i}" for i in range(19) if i != 3]
    # the train row refused by the loader and the truncated file; not the test split's, not the bad row
    assert (skipped.count, skipped.n_listed) == (2, 20)
    assert skipped.to_dict()["files"][0] == "list.csv:7: image /etc/passwd leads outside ..."
    assert skipped.to_dict()["files"][1].startswith(f"{tmp_path / '03.png'}: does not decode: ")


def test_drop_unusable_stops_with_one_line_past_the_share(tmp_path):
    records = _files(tmp_path, 20, bad={0, 5})
    result = LoadResult("x", str(tmp_path), records)
    _, skipped = drop_unusable(result, [records], max_bad=0.1)  # 2 of 20 = 10 %: allowed
    assert skipped.count == 2
    with pytest.raises(DataFormatError) as err:
        drop_unusable(result, [records], max_bad=0.05)
    message = str(err.value)
    assert "2 of 20 images cannot be used, more than the 5% allowed (--max-bad-images)" in message
    assert f"facr data inspect --verify {tmp_path}" in message and "\n" not in message


def test_drop_unusable_decodes_each_image_once(tmp_path, monkeypatch):
    records = _files(tmp_path, 6, bad=set())
    calls: list[str] = []
    real = images.image_problem
    monkeypatch.setattr(images, "image_problem", lambda p: calls.append(p) or real(p))
    # a record in two parts (the same file listed twice) is still decoded once
    drop_unusable(LoadResult("x", str(tmp_path), records), [records, records[:2]])
    assert sorted(calls) == sorted(r.image for r in records)


# ------------------------------------------------------------------ a truncated image in AffectNet
def test_inspect_verify_reports_the_truncated_image_by_csv_line_and_exits_1(tmp_path, run_cli):
    root = fixture_copy(tmp_path, "affectnet")
    broken = truncate(root / AFFECTNET_IMAGES / "4/h8.jpg")
    code, out, err = run_cli("data", "inspect", root)  # without --verify: found, not decoded
    assert code == 0 and err == "" and "errors: 1 " in out and "not decoded (--verify decodes every one)" in out
    code, out, err = run_cli("data", "inspect", root, "--verify")
    assert code == 1
    assert f"{root / AFFECTNET_VAL}:2: unreadable image {broken}: does not decode" in out  # no header row there
    assert "images: all 4 decode; 1 row skipped for the image" in out and "errors: 2 (those rows were skipped)" in out
    assert err == f"facr: {root}: 2 rows skipped, 1 for the image (missing, outside the data root or not decodable)\n"
    code, out, err = run_cli("data", "inspect", root, "--verify", "--json")
    doc = json.loads(out)
    assert code == 1 and one_line(err)
    assert doc["images_verified"] is True and doc["n_records"] == 4 and doc["n_images"] == 4
    assert doc["image_errors"]["count"] == 1 and str(broken) in doc["image_errors"]["files"][0]


def test_inspect_verify_passes_a_clean_dataset_with_exit_0(tmp_path, run_cli):
    root = fixture_copy(tmp_path, "rafdb")
    listing = root / "basic/EmoLabel/list_patition_label.txt"
    lines = listing.read_text(encoding="utf-8").splitlines()
    listing.write_text("\n".join(lines[:5] + lines[6:]) + "\n", encoding="utf-8")  # without the malformed line 6
    code, out, err = run_cli("data", "inspect", root, "--verify")
    assert (code, err) == (0, "") and "images: all 12 decode" in out and "errors: 0" in out


@pytest.fixture(scope="module")
def affectnet_run(tmp_path_factory) -> Path:
    """A tiny reasoner trained on the AffectNet fixture's train split (neutral, happiness, contempt)."""
    from facr.train import load_train_config, train

    out = tmp_path_factory.mktemp("affectnet") / "run"
    train(load_train_config(None, {"data.path": str(FIXTURES / "affectnet"), "data.image_size": 32,
                                   "data.val_split": "train", "data.test_split": "train",
                                   "encoder.arch": "resnet-tiny", "graph": "emfacs", "batch_size": 4, "epochs": 1,
                                   "out": str(out)}), progress=False)
    return out


def test_audit_skips_the_truncated_image_with_a_count_or_refuses_past_the_share(affectnet_run, tmp_path, run_cli):
    root = fixture_copy(tmp_path, "affectnet")
    broken = truncate(root / AFFECTNET_IMAGES / "1/b2.png")
    audit = ("audit", "--model", affectnet_run, "--data", root, "--split", "train", "--no-progress")
    code, out, err = run_cli(*audit)  # 1 of the split's 3 images: past the default 5 %
    assert code == 2 and out == "" and one_line(err)
    assert err.startswith(f"facr: {root}: 1 of 3 images cannot be used, more than the 5% allowed")
    assert str(broken) in err
    code, out, err = run_cli(*audit, "--max-bad-images", "0.5", "--json", "--out", tmp_path / "report")
    m = json.loads(out)
    assert code == 0 and m["n_samples"] == 2
    assert m["skipped_images"]["count"] == 1 and m["skipped_images"]["of"] == 3
    assert m["skipped_images"]["files"][0].startswith(f"{broken}: does not decode: ")
    assert one_line(err) and err.startswith(f"facr: warning: {root}: skipped 1 of 3 images")
    assert json.loads((tmp_path / "report/metrics.json").read_text())["skipped_images"] == m["skipped_images"]
    assert "skipped images: 1 of 3" in (tmp_path / "report/report.md").read_text()
    code, out, _ = run_cli("audit", "--model", affectnet_run, "--data", FIXTURES / "affectnet", "--split", "train",
                           "--json", "--no-progress")  # the intact fixture: nothing skipped
    assert code == 0 and json.loads(out)["skipped_images"] == {"count": 0, "of": 3, "files": []}


def test_training_skips_and_records_the_truncated_image_or_refuses_past_the_share(tmp_path, run_cli):
    root = fixture_copy(tmp_path, "affectnet")
    truncate(root / AFFECTNET_IMAGES / "3/f6.jpg")
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"data": {"path": str(root), "image_size": 32, "val_split": "train",
                                               "test_split": "train"}, "encoder": {"arch": "resnet-tiny"},
                                      "graph": "emfacs", "batch_size": 4, "epochs": 1}))
    code, out, err = run_cli("train", "reasoner", "--config", config, "--out", tmp_path / "r1", "--no-progress")
    assert code == 2 and one_line(err) and "1 of 3 images cannot be used" in err
    assert not (tmp_path / "r1" / "model").exists()
    code, out, err = run_cli("train", "reasoner", "--config", config, "--out", tmp_path / "r2", "--no-progress",
                             "--max-bad-images", "0.4")
    assert code == 0, err
    assert "facr: warning: " in err and "skipped 1 of 3 images" in err and "Traceback" not in err
    skipped = json.loads((tmp_path / "r2" / "metrics.json").read_text())["skipped_images"]
    assert skipped["count"] == 1 and "f6.jpg" in skipped["files"][0]


# ------------------------------------------------------------------ corrupt PNGs in a benchmark folder
@pytest.fixture(scope="module")
def synth_pair(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(a clean tiny benchmark, a copy with test rows 2 and 5 corrupted, a reasoner trained on the clean one)."""
    import datasets

    from facr.data.synth import SynthConfig, write_synth
    from facr.train import load_train_config, train

    base = tmp_path_factory.mktemp("synth")
    clean, bad = base / "clean", base / "bad"
    write_synth(clean, SynthConfig(n=60, seed=0, subjects=6, size=32), workers=1)
    dd = datasets.load_from_disk(str(clean))
    dd = datasets.DatasetDict({k: v.cast_column("image", datasets.Image(decode=False)) for k, v in dd.items()})

    def corrupt(row, i):
        if i in (1, 4):
            row["image"] = {"bytes": row["image"]["bytes"][:80], "path": None}
        return row

    dd["test"] = dd["test"].map(corrupt, with_indices=True)
    dd.save_to_disk(str(bad))
    for name in ("config.json", "graph.json"):
        shutil.copy(clean / name, bad / name)
    run = base / "run"
    train(load_train_config(None, {"data.path": str(clean), "data.image_size": 32, "encoder.arch": "resnet-tiny",
                                   "graph": "truth", "batch_size": 16, "epochs": 1, "out": str(run)}), progress=False)
    return clean, bad, run


def test_corrupt_benchmark_pngs_are_reported_by_split_and_row(synth_pair, run_cli):
    _, bad, _ = synth_pair
    result = load("synth", bad)
    assert len(result.records) == 58
    assert [(Path(i.file).name, i.line, i.split) for i in result.issues] == [("test", 2, "test"), ("test", 5, "test")]
    assert all("does not decode" in i.message and i.image for i in result.issues)
    code, out, err = run_cli("data", "inspect", bad, "--verify", "--json")  # labels-only load, decoded as a check
    doc = json.loads(out)
    assert code == 1 and one_line(err) and doc["n_records"] == 58 and doc["image_errors"]["count"] == 2
    assert doc["image_errors"]["files"][0].startswith(f"{bad / 'test'}:2: image does not decode")


def test_audit_of_a_benchmark_with_corrupt_pngs_counts_them(synth_pair, run_cli):
    clean, bad, run = synth_pair
    n_test = sum(r.split == "test" for r in load("synth", clean, decode=False).records)
    code, out, err = run_cli("audit", "--model", run, "--data", bad, "--json", "--no-progress")
    assert code == 2 and out == "" and one_line(err) and f"2 of {n_test} images cannot be used" in err
    code, out, err = run_cli("audit", "--model", run, "--data", bad, "--json", "--no-progress",
                             "--max-bad-images", "0.5")
    m = json.loads(out)
    assert code == 0 and m["n_samples"] == n_test - 2
    assert m["skipped_images"]["count"] == 2 and m["skipped_images"]["of"] == n_test
    assert one_line(err) and f"skipped 2 of {n_test} images" in err


def test_a_benchmark_naming_a_split_outside_its_folder_is_refused_before_loading(synth_pair, tmp_path, run_cli):
    clean, _, _ = synth_pair
    root = Path(shutil.copytree(clean, tmp_path / "s"))
    (root / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "../../elsewhere"]}))
    code, out, err = run_cli("data", "inspect", root)
    assert code == 2 and one_line(err) and err.startswith(f"facr: {root / 'dataset_dict.json'}: 'splits' must list")
    (root / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "val", "test"]}))
    state = json.loads((root / "train/state.json").read_text())
    state["_data_files"] = [{"filename": "../../../x.arrow"}]
    (root / "train/state.json").write_text(json.dumps(state))
    code, out, err = run_cli("data", "inspect", root)
    assert code == 2 and one_line(err) and "data file '../../../x.arrow' is not a file of the train/ folder" in err


# ------------------------------------------------------------------ paths that leave the data root
def test_affectnet_rows_naming_etc_passwd_or_dotdot_are_refused_and_never_opened(tmp_path, run_cli, opened):
    root = fixture_copy(tmp_path, "affectnet")
    dotdot = outside_image(root, "x.png")  # ../../x.png from the image folder: the dataset's top, not its images
    far = outside_image(tmp_path)  # ../../../outside.png: outside the dataset entirely
    rows = [f"{path},0,0,16,16,,1,-2,-2" for path in ("/etc/passwd", "../../x.png", "../../../outside.png")]
    with (root / AFFECTNET_VAL).open("a", encoding="utf-8") as handle:
        handle.write("\n".join(rows) + "\n")
    opened.clear()
    code, out, err = run_cli("data", "inspect", root, "--verify", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["n_records"] == 5 and doc["image_errors"]["count"] == 3
    refused = doc["image_errors"]["files"]
    for line, path in ((3, "/etc/passwd"), (4, "../../x.png"), (5, "../../../outside.png")):
        assert any(f.startswith(f"{root / AFFECTNET_VAL}:{line}: image ") and path in f and "refused, not read" in f
                   for f in refused), (line, refused)
    touched = set(opened)
    assert {"/etc/passwd", str(dotdot.resolve()), str(far.resolve())}.isdisjoint(touched)
    assert str((root / AFFECTNET_IMAGES / "0/a1.jpg").resolve()) in touched  # the check did open the others


def test_an_audit_counts_refused_rows_and_never_opens_them(affectnet_run, tmp_path, run_cli, opened):
    root = fixture_copy(tmp_path, "affectnet")
    far = outside_image(tmp_path)
    with (root / "Manually_Annotated_file_lists/training.csv").open("a", encoding="utf-8") as handle:
        handle.write("../../../outside.png,0,0,16,16,,1,-2,-2\n/etc/passwd,0,0,16,16,,0,-2,-2\n")
    opened.clear()
    code, out, err = run_cli("audit", "--model", affectnet_run, "--data", root, "--split", "train", "--json",
                             "--no-progress", "--max-bad-images", "0.5")
    m = json.loads(out)
    assert code == 0 and m["n_samples"] == 3 and m["skipped_images"]["count"] == 2 and m["skipped_images"]["of"] == 5
    assert one_line(err)
    assert {"/etc/passwd", str(far.resolve())}.isdisjoint(opened)


# Every loader: a file inside the layout replaced by a symlink to a valid image outside it. Each
# loader reads the image path from its annotation file (AffectNet, RAF-DB, FABA) or lists a frame
# folder (the others); one check, Loading.check_image, refuses them all.
SYMLINKED = {
    "affectnet": (AFFECTNET_IMAGES / "0/a1.jpg", 5),
    "rafdb": ("basic/Image/aligned/train_00001_aligned.jpg", 12),
    "faba": ("FABAInstruct/train/images/AffectNet/AffectNet_v2/3/f6.jpg", 6),
    "unbc": ("Images/042-ll042/ll042t1aaaff/ll042t1aaaff001.png", 6),
    "affwild2": ("cropped_aligned/video1/00001.jpg", 6),
    "disfa": ("Images/SN002/0001.png", 9),
    "bp4d": ("Sequences/F001/T1/2440.jpg", 5),
}


@pytest.mark.parametrize("fmt", sorted(SYMLINKED))
def test_every_loader_refuses_an_image_symlinked_out_of_the_dataset(fmt, tmp_path, opened):
    rel, n_records = SYMLINKED[fmt]
    root = fixture_copy(tmp_path, fmt)
    far = outside_image(tmp_path)
    link = root / rel
    link.unlink()
    link.symlink_to(far)
    opened.clear()
    result = load(fmt, root, verify_images=True)
    assert len(result.records) == n_records - 1
    refused = [i for i in result.issues if "refused, not read" in i.message]
    assert len(refused) == 1 and refused[0].image == str(link) and f"(resolves to {far})" in refused[0].message
    assert str(far.resolve()) not in opened
    assert str(link) not in {r.image for r in result.records}


def test_faba_items_naming_paths_outside_the_folder_are_refused(tmp_path, opened):
    root = fixture_copy(tmp_path, "faba")
    far = outside_image(tmp_path)
    anno = root / "FABAInstruct/train/train_au_anno.json"
    items = json.loads(anno.read_text())
    # "../outside.png" from the folder holding FABAInstruct/ is the valid image next to the dataset
    extra = [dict(items[0], id=f"x/{i}", image=image) for i, image in enumerate(["../outside.png", "/etc/passwd"])]
    anno.write_text(json.dumps(items + extra))
    opened.clear()
    result = load("faba", root, verify_images=True)
    refused = [i for i in result.issues if "refused, not read" in i.message]
    assert [Path(i.file).name for i in refused] == ["train_au_anno.json"] * 2
    assert {i.split for i in refused} == {"train"}
    assert len(result.records) == 6 and {"/etc/passwd", str(far.resolve())}.isdisjoint(opened)
