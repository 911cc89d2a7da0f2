"""The real-dataset loaders on tiny fixtures in each dataset's released layout, and `facr data inspect`.

The fixtures (tests/data/fixtures/<format>/, written by make_fixtures.py) hold one malformed
row each; the numbers asserted here are counted by hand from make_fixtures.py.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from facr import au
from facr.data.formats import FORMATS, detect_format, disfa, load, rafdb, resolve_format, unbc
from facr.data.formats.affectnet import crop_face, load_with_faba
from facr.data.summary import summarize
from facr.errors import DataFormatError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REAL_FORMATS = ("unbc", "affwild2", "affectnet", "faba", "disfa", "bp4d", "rafdb")

# format -> (records, subjects, errors, the file the malformed row is in, its line)
EXPECTED = {
    "unbc": (6, 2, 1, "mg101t2aeunaff003_facs.txt", 1),
    "affwild2": (6, 2, 1, "video1.txt", 7),
    "affectnet": (5, 5, 1, "training.csv", 6),
    "faba": (6, 6, 1, "train_au_anno.json", None),
    "disfa": (9, 2, 1, "SN002_au4.txt", 3),
    "bp4d": (5, 2, 1, "F001_T1.csv", 5),
    "rafdb": (12, 12, 1, "list_patition_label.txt", 6),
}


def fixture_copy(tmp_path, fmt):
    """A writable copy of a fixture, for tests that break it."""
    return Path(shutil.copytree(FIXTURES / fmt, tmp_path / fmt))


def by(records, *fields):
    return {tuple(getattr(r, f) for f in fields): r for r in records}


# ------------------------------------------------------------------ every format
@pytest.mark.parametrize("fmt", REAL_FORMATS)
def test_each_loader_counts_records_subjects_and_reports_the_malformed_row_with_file_and_line(fmt):
    n_records, n_subjects, n_errors, bad_file, bad_line = EXPECTED[fmt]
    result = load(fmt, FIXTURES / fmt)
    assert result.format == fmt
    assert len(result.records) == n_records
    assert len({r.subject for r in result.records}) == n_subjects
    assert len(result.issues) == n_errors
    issue = result.issues[0]
    assert Path(issue.file).name == bad_file and issue.line == bad_line
    assert all(r.dataset == fmt for r in result.records)


@pytest.mark.parametrize("fmt", REAL_FORMATS)
def test_strict_mode_raises_on_the_malformed_row_naming_file_and_line(fmt):
    _, _, _, bad_file, bad_line = EXPECTED[fmt]
    with pytest.raises(DataFormatError) as info:
        load(fmt, FIXTURES / fmt, strict=True)
    assert Path(info.value.source).name == bad_file
    # a JSON file has no line to name: FABA's message names the entry (the fixture's 4th, 0-based 3, has no image)
    where = f"line {bad_line}" if bad_line is not None else "item 3"
    assert info.value.message.startswith(f"{where}: ")


@pytest.mark.parametrize("fmt", REAL_FORMATS)
def test_a_folder_without_the_layout_is_a_data_format_error_in_both_modes(fmt, tmp_path):
    for strict in (False, True):
        with pytest.raises(DataFormatError) as info:
            load(fmt, tmp_path, strict=strict)
        assert info.value.source == str(tmp_path)
    with pytest.raises(DataFormatError, match="no such folder"):
        load(fmt, tmp_path / "missing")


@pytest.mark.parametrize("fmt", REAL_FORMATS)
def test_detect_format_recognises_each_released_layout(fmt):
    assert detect_format(FIXTURES / fmt) == fmt


def test_detect_format_finds_a_synth_folder_and_gives_none_for_an_unknown_one(tmp_path):
    assert detect_format(tmp_path) is None
    assert detect_format(tmp_path / "missing") is None
    (tmp_path / "config.json").write_text("{}")
    assert detect_format(tmp_path) is None
    (tmp_path / "dataset_dict.json").write_text('{"splits": ["train"]}')
    assert detect_format(tmp_path) == "synth"


def test_records_convert_to_a_hf_dataset_with_fixed_au_columns():
    ds = load("bp4d", FIXTURES / "bp4d").to_dataset()
    aus = ds.info.description.removeprefix("aus=").split(",")
    assert aus == ["AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU14", "AU15", "AU17", "AU23", "AU24"]
    row = ds[2]  # F001_T1 frame 2442: AU4 is 9 (not coded)
    assert row["frame"] == 2442 and row["au_presence"][aus.index("AU4")] == -1


# ------------------------------------------------------------------ unbc
def test_unbc_reads_pspi_and_facs_with_unlisted_coded_aus_absent():
    result = load("unbc", FIXTURES / "unbc")
    frames = by(result.records, "subject", "frame")
    r = frames[("042-ll042", 3)]
    assert r.video == "ll042t1aaaff" and r.split is None and r.emotion is None
    assert r.pspi == 7.0 and r.pain == 1
    assert r.active_aus() == ["AU4", "AU7", "AU10", "AU43"]
    assert r.au_intensity["AU4"] == 3.0 and r.au_intensity["AU6"] == 0.0
    assert set(r.au_presence) == {f"AU{n}" for n in (4, 6, 7, 9, 10, 12, 20, 25, 26, 27, 43)}
    assert r.au_presence.get("AU1") is None  # UNBC does not code AU1
    assert Path(r.image).name == "ll042t1aaaff003.png" and Path(r.image).is_file()
    assert frames[("042-ll042", 1)].active_aus() == [] and frames[("042-ll042", 1)].pspi == 0.0
    assert sorted(frames) == [("042-ll042", 1), ("042-ll042", 2), ("042-ll042", 3), ("042-ll042", 4),
                              ("101-mg101", 1), ("101-mg101", 2)]


def test_unbc_pspi_files_agree_with_the_pspi_formula_on_the_facs_intensities():
    for r in load("unbc", FIXTURES / "unbc").records:
        assert au.pspi(r.au_intensity) == r.pspi


def test_unbc_reports_an_image_without_label_and_a_label_without_image(tmp_path):
    root = fixture_copy(tmp_path, "unbc")
    (root / "Images/042-ll042/ll042t1aaaff/ll042t1aaaff002.png").unlink()
    extra = root / "Images/042-ll042/ll042t1aaaff/ll042t1aaaff009.png"
    shutil.copy(root / "Images/042-ll042/ll042t1aaaff/ll042t1aaaff001.png", extra)
    result = load("unbc", root)
    messages = sorted(str(i) for i in result.issues)
    assert len(result.records) == 5
    assert any("no image Images/042-ll042/ll042t1aaaff/ll042t1aaaff002.png" in m for m in messages)
    assert any(m.startswith(f"{extra}: image has no Frame_Labels/PSPI label") for m in messages)


def test_verify_images_reports_an_image_that_does_not_decode(tmp_path):
    root = fixture_copy(tmp_path, "unbc")
    broken = root / "Images/042-ll042/ll042t1aaaff/ll042t1aaaff004.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert len(load("unbc", root).records) == 6  # existence only, by default
    result = unbc.load(root, verify_images=True)
    assert len(result.records) == 5
    assert any(i.file == str(broken) and "unreadable image" in i.message for i in result.issues)


# ------------------------------------------------------------------ affwild2
def test_affwild2_merges_expression_and_au_files_per_video_frame():
    result = load("affwild2", FIXTURES / "affwild2")
    got = [(r.split, r.video, r.frame, r.emotion) for r in result.records]
    assert got == [("train", "video1", 1, "neutral"), ("train", "video1", 2, "happiness"),
                   ("train", "video1", 4, None), ("train", "video1", 6, None),
                   ("val", "10-60-1280x720_right", 1, "anger"), ("val", "10-60-1280x720_right", 2, "disgust")]
    frames = by(result.records, "video", "frame")
    assert frames[("video1", 2)].active_aus() == ["AU6", "AU12", "AU25"]
    assert frames[("video1", 2)].au_presence["AU4"] == 0 and len(frames[("video1", 2)].au_presence) == 12
    assert frames[("video1", 6)].active_aus() == ["AU1", "AU2", "AU25", "AU26"]  # its expression line is malformed
    assert frames[("10-60-1280x720_right", 1)].au_presence == {}  # no AU file for this video
    assert Path(frames[("video1", 4)].image).name == "00004.jpg"
    assert frames[("video1", 1)].subject == "video1"
    assert result.dropped == {"expression Other, no AU label": 2, "no face image": 1, "not annotated": 1}


def test_affwild2_other_keeps_the_frame_for_its_au_labels_with_no_emotion(tmp_path):
    root = fixture_copy(tmp_path, "affwild2")
    au_file = root / "annotations/AU_Detection_Challenge/Train_Set/video1.txt"
    lines = au_file.read_text().splitlines()
    lines[3] = "0,0,0,0,0,0,0,1,0,0,0,0"  # frame 3 (labelled Other): AU15
    au_file.write_text("\n".join(lines) + "\n")
    result = load("affwild2", root)
    r = by(result.records, "video", "frame")[("video1", 3)]
    assert r.emotion is None and r.meta == {"expression": "other"} and r.active_aus() == ["AU15"]
    assert result.dropped["expression Other, no AU label"] == 1


def test_affwild2_without_cropped_frames_loads_labels_with_no_image(tmp_path):
    root = fixture_copy(tmp_path, "affwild2")
    shutil.rmtree(root / "cropped_aligned")
    result = load("affwild2", root)
    assert len(result.records) == 7 and all(r.image is None for r in result.records)
    assert by(result.records, "video", "frame")[("video1", 5)].emotion == "surprise"
    assert "no face image" not in result.dropped


def test_affwild2_reports_a_video_without_a_frame_folder(tmp_path):
    root = fixture_copy(tmp_path, "affwild2")
    shutil.rmtree(root / "cropped_aligned/10-60-1280x720_right")
    result = load("affwild2", root)
    assert {r.video for r in result.records} == {"video1"}
    assert any("no frame folder for video '10-60-1280x720_right'" in i.message for i in result.issues)


# ------------------------------------------------------------------ affectnet
def test_affectnet_maps_expressions_and_keeps_box_landmarks_and_ratings():
    result = load("affectnet", FIXTURES / "affectnet")
    records = by(result.records, "subject")
    assert {s[0]: r.emotion for s, r in records.items()} == {
        "0/a1": "neutral", "1/b2": "happiness", "3/f6": "contempt", "4/g7": "anger", "4/h8": "surprise"}
    assert {s[0]: r.split for s, r in records.items()} == {
        "0/a1": "train", "1/b2": "train", "3/f6": "train", "4/g7": "val", "4/h8": "val"}
    b2 = records[("1/b2",)]
    assert b2.meta["face_box"] == [3, 1, 10, 12]
    assert b2.meta["landmarks"].shape == (68, 2) and b2.meta["landmarks"].dtype == np.float32
    np.testing.assert_allclose(b2.meta["landmarks"][0], [1.0, 0.5])
    assert b2.meta["valence"] == pytest.approx(0.8) and b2.meta["arousal"] == pytest.approx(0.4)
    assert b2.meta["expression_code"] == 1 and b2.au_presence == {}
    assert result.dropped == {"expression 10 (No-Face)": 1, "expression 8 (None)": 1}


def test_affectnet_crop_face_cuts_the_box_and_clips_a_margin_to_the_image():
    a1 = by(load("affectnet", FIXTURES / "affectnet").records, "subject")[("0/a1",)]
    assert crop_face(a1).size == (8, 8)  # box (2, 2, 8, 8) in a 16x16 image
    assert crop_face(a1, margin=0.5).size == (14, 14)  # grows 4 a side: (-2, -2)-(14, 14), clipped at 0
    with pytest.raises(ValueError, match="margin"):
        crop_face(a1, margin=-1)


def test_affectnet_reports_a_missing_image_by_csv_line(tmp_path):
    root = fixture_copy(tmp_path, "affectnet")
    (root / "Manually_Annotated/Manually_Annotated_Images/4/h8.jpg").unlink()
    result = load("affectnet", root)
    assert len(result.records) == 4
    issue = next(i for i in result.issues if "image not found" in i.message)
    assert Path(issue.file).name == "validation.csv" and issue.line == 2


# ------------------------------------------------------------------ faba
def test_faba_reads_labels_where_given_and_gpt4v_text_otherwise():
    result = load("faba", FIXTURES / "faba")
    records = by(result.records, "split", "subject")
    b2 = records[("train", "AffectNet/AffectNet_v2/1/b2")]
    assert b2.active_aus() == ["AU6", "AU12", "AU25"] and b2.meta["au_source"] == "gpt4v-text"
    assert b2.emotion is None and "happy" in b2.meta["emotion_text"]  # train items carry no label
    assert len(b2.au_presence) == 20 and b2.au_presence["AU4"] == 0
    f6 = records[("train", "AffectNet/AffectNet_v2/3/f6")]
    assert f6.active_aus() == ["AU4", "AU9", "AU15"] and "AU11" not in f6.au_presence  # AU11 is not a FABA AU
    h8 = records[("test", "AffectNet/AffectNet_v2/4/h8")]
    assert h8.active_aus() == ["AU1", "AU2", "AU5", "AU26"] and h8.meta["au_source"] == "label"
    assert h8.emotion == "surprise"
    assert records[("test", "AffectNet/AffectNet_v2/4/g7")].emotion == "anger"  # label 3 in FABA's order
    a1 = records[("train", "AffectNet/AffectNet_v2/0/a1")]
    assert a1.au_presence == {} and a1.emotion is None
    assert Path(h8.image).is_file() and h8.meta["landmark"].endswith("4/h8.npy")
    assert "item 3: no 'image' path" in result.issues[0].message


def test_faba_loads_the_same_from_the_folder_that_holds_it():
    outer = load("faba", FIXTURES / "faba").records
    inner = load("faba", FIXTURES / "faba" / "FABAInstruct").records
    assert [(r.split, r.subject, r.image) for r in outer] == [(r.split, r.subject, r.image) for r in inner]


def test_faba_reports_invalid_json_with_its_line(tmp_path):
    root = fixture_copy(tmp_path, "faba")
    (root / "FABAInstruct/eval/eval_au_anno.json").write_text('[\n  {"image": "x.jpg",\n  oops\n]')
    result = load("faba", root)
    issue = next(i for i in result.issues if i.file.endswith("eval_au_anno.json"))
    assert issue.line == 3 and issue.message.startswith("not valid JSON")
    assert len(result.records) == 6  # h8 is still an emotion item


# ------------------------------------------------------------------ affectnet+faba
def test_affectnet_faba_join_keeps_affectnet_emotion_and_faba_aus():
    result = load_with_faba(FIXTURES / "affectnet", faba_root=FIXTURES / "faba")
    got = {r.subject: (r.emotion, r.split, r.active_aus(), r.meta["faba_split"]) for r in result.records}
    assert got == {"1/b2": ("happiness", "train", ["AU6", "AU12", "AU25"], "train"),
                   "3/f6": ("contempt", "train", ["AU4", "AU9", "AU15"], "train"),
                   "4/h8": ("surprise", "val", ["AU1", "AU2", "AU5", "AU26"], "test")}
    assert all(r.dataset == "affectnet+faba" for r in result.records)
    assert result.dropped["no FABA AU item"] == 2  # a1, g7
    assert result.dropped["FABA item not among the kept AffectNet rows"] == 1  # e5: malformed AffectNet row
    assert len(result.issues) == 2
    kept = load_with_faba(FIXTURES / "affectnet", faba_root=FIXTURES / "faba", keep_unmatched=True)
    assert len(kept.records) == 5 and "no FABA AU item" not in kept.dropped


def test_affectnet_faba_finds_fabainstruct_inside_the_affectnet_root_by_default(tmp_path):
    root = fixture_copy(tmp_path, "affectnet")
    shutil.copytree(FIXTURES / "faba/FABAInstruct", root / "FABAInstruct")
    result = load("affectnet+faba", root)
    assert result.format == "affectnet+faba" and sorted(r.subject for r in result.records) == ["1/b2", "3/f6", "4/h8"]
    with pytest.raises(DataFormatError, match="no FABAInstruct/ folder"):
        load("affectnet+faba", FIXTURES / "affectnet")
    (root / "FABAInstruct/train/train_au_anno.json").unlink()
    (root / "FABAInstruct/train/train_emotion_anno.json").unlink()
    shutil.rmtree(root / "FABAInstruct/eval")
    with pytest.raises(DataFormatError, match="FABA-Instruct release layout"):
        load("affectnet+faba", root)


# ------------------------------------------------------------------ disfa
def test_disfa_presence_is_intensity_at_least_2_and_keeps_intensities():
    result = load("disfa", FIXTURES / "disfa")
    frames = by(result.records, "subject", "frame")
    assert [frames[("SN001", f)].au_presence["AU1"] for f in range(1, 6)] == [0, 0, 1, 1, 0]
    assert [frames[("SN001", f)].au_intensity["AU1"] for f in range(1, 6)] == [0, 1, 2, 3, 0]
    assert frames[("SN002", 3)].au_presence == {"AU1": 0, "AU4": None, "AU12": 0}  # its AU4 line is malformed
    lenient = by(disfa.load(FIXTURES / "disfa", threshold=1).records, "subject", "frame")
    assert lenient[("SN001", 2)].au_presence["AU1"] == 1
    with pytest.raises(ValueError, match="threshold"):
        disfa.load(FIXTURES / "disfa", threshold=0)


def test_disfa_uses_extracted_frames_when_there_and_the_video_otherwise():
    frames = by(load("disfa", FIXTURES / "disfa").records, "subject", "frame")
    sn1, sn2 = frames[("SN001", 4)], frames[("SN002", 4)]
    assert sn1.image is None and sn1.video == "SN001" and sn1.meta["video_file"].endswith("LeftVideoSN001_comp.avi")
    assert Path(sn2.image).name == "0004.png" and sn2.meta == {}


# ------------------------------------------------------------------ bp4d
def test_bp4d_reads_occurrence_with_9_as_not_coded_and_drops_never_coded_columns():
    result = load("bp4d", FIXTURES / "bp4d")
    frames = by(result.records, "video", "frame")
    assert sorted(frames) == [("F001_T1", 2440), ("F001_T1", 2441), ("F001_T1", 2442),
                              ("M001_T8", 100), ("M001_T8", 101)]
    r = frames[("F001_T1", 2442)]
    assert r.subject == "F001" and r.au_presence["AU4"] is None
    assert r.active_aus() == ["AU6", "AU7", "AU10", "AU12", "AU23", "AU24"]
    assert "AU27" not in r.au_presence  # all 9 in the file
    assert Path(r.image).name == "2442.jpg" and frames[("M001_T8", 100)].image is None
    assert frames[("M001_T8", 100)].active_aus() == ["AU15", "AU17", "AU24"]


# ------------------------------------------------------------------ rafdb
RAFDB_LIST = "basic/EmoLabel/list_patition_label.txt"


def rafdb_colour(code):
    """The fixture's solid colour for label ``code`` (make_fixtures.rafdb_colour)."""
    return (30 * code, 200 - 20 * code, 90)


def test_rafdb_maps_label_codes_to_emotions_and_name_prefixes_to_splits():
    result = load("rafdb", FIXTURES / "rafdb")
    got = {r.subject: (r.split, r.emotion, r.meta["label_code"]) for r in result.records}
    assert got == {
        "train_00001": ("train", "sadness", 5), "train_00002": ("train", "happiness", 4),
        "train_00003": ("train", "surprise", 1), "train_00004": ("train", "neutral", 7),
        "train_00005": ("train", "happiness", 4), "train_00007": ("train", "fear", 2),
        "train_00008": ("train", "anger", 6), "train_00009": ("train", "disgust", 3),
        "test_0001": ("test", "sadness", 5), "test_0002": ("test", "surprise", 1),
        "test_0003": ("test", "happiness", 4), "test_0004": ("test", "neutral", 7)}
    splits = [r.split for r in result.records]
    assert (splits.count("train"), splits.count("test")) == (8, 4)
    assert "train_00006" not in got  # its label is 9, the malformed line
    r = by(result.records, "subject")[("test_0003",)]
    assert r.meta == {"file": "test_0003.jpg", "label_code": 4}
    assert r.au_presence == {} and r.video is None and r.frame is None and r.pspi is None
    assert Path(r.image) == FIXTURES / "rafdb/basic/Image/aligned/test_0003_aligned.jpg"
    assert result.dropped == {}


def test_rafdb_record_images_load_as_uint8_rgb_of_the_listed_face():
    from PIL import Image

    from facr.data.torch_data import load_image

    for images, size in (("aligned", (8, 8)), ("original", (12, 10))):
        records = by(rafdb.load(FIXTURES / "rafdb", images=images).records, "subject")
        r = records[("train_00008",)]  # anger, code 6
        assert Path(r.image).parent.name == images
        with Image.open(r.image) as im:
            assert im.size == size
        pixels = load_image(r.image, 8)
        assert pixels.shape == (8, 8, 3) and pixels.dtype == np.uint8
        np.testing.assert_allclose(pixels.reshape(-1, 3).mean(0), rafdb_colour(6), atol=3)
    original = by(rafdb.load(FIXTURES / "rafdb", images="original").records, "subject")[("test_0001",)]
    assert Path(original.image) == FIXTURES / "rafdb/basic/Image/original/test_0001.jpg"


def test_rafdb_reads_a_copy_rooted_at_its_basic_folder_the_same():
    outer = load("rafdb", FIXTURES / "rafdb")
    inner = load("rafdb", FIXTURES / "rafdb" / "basic")
    assert detect_format(FIXTURES / "rafdb") == detect_format(FIXTURES / "rafdb" / "basic") == "rafdb"
    assert [(r.subject, r.split, r.emotion, r.image) for r in outer.records] == [
        (r.subject, r.split, r.emotion, r.image) for r in inner.records]
    assert [(i.file, i.line) for i in inner.issues] == [(str(FIXTURES / "rafdb" / RAFDB_LIST), 6)]


def test_rafdb_without_the_chosen_image_folder_or_with_an_unknown_kind_is_an_error(tmp_path):
    root = fixture_copy(tmp_path, "rafdb")
    shutil.rmtree(root / "basic/Image/original")
    assert len(load("rafdb", root).records) == 12
    with pytest.raises(DataFormatError, match=r"no Image/original/ folder \(images='original'\)") as info:
        load("rafdb", root, images="original")
    assert info.value.source == str(root / "basic")
    with pytest.raises(ValueError, match="images must be one of aligned, original, got 'crop'"):
        load("rafdb", root, images="crop")
    (root / RAFDB_LIST).unlink()
    with pytest.raises(DataFormatError, match="list_patition_label.txt"):
        load("rafdb", root)


# (list line, what the issue says): one of each malformed kind, each on line 2 after a good line
RAFDB_BAD_LINES = [
    ("train_00002.jpg", "1 fields, expected 2 (<image name> <label 1-7>)"),
    ("train_00002.jpg 4 0.9", "3 fields, expected 2"),
    ("train_00002.jpg happy", ("label must be 1-7 (1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, "
                               "6 Anger, 7 Neutral), got 'happy'")),
    ("train_00002.jpg 0", "label must be 1-7 (1 Surprise, "),
    ("train_00002.jpg 8", "label must be 1-7 (1 Surprise, "),
    ("val_00002.jpg 4", "image name must be a file name starting with train_ or test_, got 'val_00002.jpg'"),
    ("train_/../../x.jpg 4", "image name must be a file name starting with train_ or test_"),
    ("train_00001.jpg 5", "train_00001.jpg is listed twice (first on line 1)"),
    ("test_0099.jpg 4", "image not found: "),
]


@pytest.mark.parametrize("line, message", RAFDB_BAD_LINES, ids=[
    "one-field", "three-fields", "label-not-a-number", "label-0", "label-8", "not-train-or-test",
    "name-with-folders", "listed-twice", "image-missing"])
def test_rafdb_reports_each_malformed_line_kind_with_file_and_line_or_raises_in_strict_mode(tmp_path, line, message):
    root = fixture_copy(tmp_path, "rafdb")
    list_file = root / RAFDB_LIST
    list_file.write_text(f"train_00001.jpg 5\n{line}\ntest_0001.jpg 5\n")
    result = load("rafdb", root)
    assert [r.subject for r in result.records] == ["train_00001", "test_0001"]
    assert len(result.issues) == 1
    issue = result.issues[0]
    assert (issue.file, issue.line) == (str(list_file), 2) and issue.message.startswith(message)
    with pytest.raises(DataFormatError) as info:
        load("rafdb", root, strict=True)
    assert info.value.source == str(list_file) and info.value.message == f"line 2: {issue.message}"


def test_rafdb_counts_every_malformed_line_and_keeps_the_rest(tmp_path):
    root = fixture_copy(tmp_path, "rafdb")
    list_file = root / RAFDB_LIST
    body = "\r\n".join(["train_00001.jpg 5", *(line for line, _ in RAFDB_BAD_LINES), "", "test_0004.jpg 7"])
    list_file.write_bytes(b"\xef\xbb\xbf" + body.encode() + b"\r\n")  # a BOM and CRLF, as Windows copies have
    result = load("rafdb", root)
    assert [r.subject for r in result.records] == ["train_00001", "test_0004"]
    assert [i.line for i in result.issues] == list(range(2, 2 + len(RAFDB_BAD_LINES)))
    assert summarize(result)["n_errors"] == len(RAFDB_BAD_LINES)


def test_rafdb_verify_images_reports_a_face_that_does_not_decode(tmp_path):
    root = fixture_copy(tmp_path, "rafdb")
    broken = root / "basic/Image/aligned/test_0002_aligned.jpg"
    broken.write_bytes(b"\xff\xd8\xff not a jpeg")
    assert len(load("rafdb", root).records) == 12  # existence only, by default
    result = rafdb.load(root, verify_images=True)
    assert len(result.records) == 11 and "test_0002" not in {r.subject for r in result.records}
    issue = next(i for i in result.issues if "unreadable image" in i.message)
    assert (issue.file, issue.line) == (str(root / RAFDB_LIST), 11) and str(broken) in issue.message


def test_rafdb_loads_for_training_as_train_and_test_with_no_val():
    from facr.train import DataConfig, load_splits

    for path in (FIXTURES / "rafdb", FIXTURES / "rafdb" / "basic"):
        splits = load_splits(DataConfig(path=str(path)))
        assert (len(splits.train), len(splits.val), len(splits.test)) == (8, 0, 4)
        assert {r.split for r in splits.train} == {"train"} and {r.split for r in splits.test} == {"test"}
        assert sorted(r.subject for r in splits.test) == ["test_0001", "test_0002", "test_0003", "test_0004"]
        assert splits.dataset_graph is None


# ------------------------------------------------------------------ summary
def test_summary_counts_prevalence_over_coded_frames_and_pspi():
    s = summarize(load("unbc", FIXTURES / "unbc"))
    assert s["n_records"] == 6 and s["n_subjects"] == 2 and s["n_errors"] == 1
    assert s["au_prevalence"]["AU4"] == pytest.approx(2 / 6) and s["au_prevalence"]["AU9"] == 0.0
    assert list(s["au_prevalence"])[:3] == ["AU4", "AU6", "AU7"]
    assert s["pspi"] == {"n_positive": 2, "max": 7.0} and s["emotions"] == {}
    d = summarize(load("disfa", FIXTURES / "disfa"))
    assert d["au_prevalence"] == {"AU1": pytest.approx(2 / 9), "AU4": 0.25, "AU12": pytest.approx(3 / 9)}
    assert d["pspi"] is None


# ------------------------------------------------------------------ CLI
def test_inspect_json_guesses_the_format_and_prints_one_object(run_cli):
    code, out, err = run_cli("data", "inspect", FIXTURES / "unbc", "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert {"format", "n_records", "n_subjects", "emotions", "au_prevalence", "pspi", "n_errors"} <= set(doc)
    assert doc["format"] == "unbc" and doc["n_records"] == 6 and doc["n_subjects"] == 2
    assert doc["pspi"] == {"n_positive": 2, "max": 7.0} and doc["n_errors"] == 1
    assert doc["au_prevalence"]["AU43"] == pytest.approx(1 / 6)


@pytest.mark.parametrize("fmt", REAL_FORMATS)
def test_inspect_json_reports_each_format(run_cli, fmt):
    n_records, n_subjects, n_errors, _, _ = EXPECTED[fmt]
    code, out, _ = run_cli("data", "inspect", "--format", fmt, FIXTURES / fmt, "--json")
    doc = json.loads(out)
    assert code == 0 and (doc["format"], doc["n_records"], doc["n_subjects"], doc["n_errors"]) == (
        fmt, n_records, n_subjects, n_errors)


def test_inspect_text_lists_labels_drops_and_skipped_rows(run_cli):
    code, out, err = run_cli("data", "inspect", "--format", "affwild2", FIXTURES / "affwild2")
    assert code == 0 and err == ""
    assert f"affwild2 at {FIXTURES / 'affwild2'}: 6 records, 2 subjects" in out
    assert "emotions: anger 1, disgust 1, happiness 1, neutral 1" in out
    assert "AU25 0.500" in out
    assert "dropped on purpose: expression Other, no AU label 2, no face image 1, not annotated 1" in out
    assert "errors: 1 (those rows were skipped)" in out and "video1.txt:7: expected an integer label" in out


def test_inspect_strict_stops_at_the_malformed_row_with_one_line_and_exit_2(run_cli):
    code, out, err = run_cli("data", "inspect", "--format", "bp4d", FIXTURES / "bp4d", "--strict")
    bad = FIXTURES / "bp4d/AUCoding/AU_OCC/F001_T1.csv"
    assert code == 2 and out == ""
    assert err == f"facr: {bad}: line 5: AU values must be 0, 1 or 9 (not coded); column '4' is '5'\n"


def test_inspect_bad_roots_exit_2_with_one_line(run_cli, tmp_path):
    code, out, err = run_cli("data", "inspect", tmp_path / "missing")
    assert (code, out, err) == (2, "", f"facr: {tmp_path / 'missing'}: no such folder\n")
    code, _, err = run_cli("data", "inspect", tmp_path)
    listed = ", ".join(FORMATS)
    assert (code, err) == (2, f"facr: {tmp_path}: cannot tell the dataset format: pass --format (one of {listed})\n")
    code, _, err = run_cli("data", "inspect", "--format", "disfa", tmp_path)
    assert code == 2 and err == f"facr: {tmp_path}: no ActionUnit_Labels/ folder (expected the DISFA release layout)\n"


def test_inspect_recognises_rafdb_from_either_root_and_counts_splits_and_emotions(run_cli):
    for root in (FIXTURES / "rafdb", FIXTURES / "rafdb" / "basic"):
        code, out, err = run_cli("data", "inspect", root, "--json")
        assert code == 0 and err == ""
        doc = json.loads(out)
        assert doc["format"] == "rafdb" and doc["n_records"] == 12 and doc["n_subjects"] == 12
        assert doc["splits"] == {"train": 8, "test": 4}
        assert doc["emotions"] == {"sadness": 2, "happiness": 3, "surprise": 2, "neutral": 2, "fear": 1,
                                   "anger": 1, "disgust": 1}
        assert doc["au_prevalence"] == {} and doc["pspi"] is None and doc["n_errors"] == 1
        assert doc["errors"][0].startswith(f"{FIXTURES / 'rafdb' / RAFDB_LIST}:6: label must be 1-7")
    code, out, err = run_cli("data", "inspect", FIXTURES / "rafdb", "--strict")
    assert code == 2 and out == "" and err.startswith(
        f"facr: {FIXTURES / 'rafdb' / RAFDB_LIST}: line 6: label must be 1-7") and err.count("\n") == 1


def test_every_format_name_is_accepted_by_the_cli():
    from facr.cli import build_parser

    for fmt in FORMATS:
        assert build_parser().parse_args(["data", "inspect", "--format", fmt, "x"]).format == fmt


def test_a_format_is_the_one_given_else_the_layouts_else_one_line_saying_how_to_give_it(tmp_path):
    assert resolve_format(FIXTURES / "bp4d") == "bp4d" == detect_format(FIXTURES / "bp4d")
    assert resolve_format(FIXTURES / "bp4d", "disfa") == "disfa"  # what the user says wins over the layout
    from facr.errors import FacrError

    with pytest.raises(FacrError) as info:
        resolve_format(tmp_path, how="set data.format")
    listed = ", ".join(FORMATS)
    assert str(info.value) == f"{tmp_path}: cannot tell the dataset format: set data.format (one of {listed})"
