"""``facr explain INPUT`` on real photos shipped in registry packages (scikit-image's astronaut and LFW
faces), a folder of them, a video this test writes from them with cv2.VideoWriter, hand-written AU
tables in each tool's format, and bad input. Smile labels are by eye (a person looking at the pictures).
"""

from __future__ import annotations

import csv
import json
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from facr.cli import _route_explain
from facr.explain import run, sources, writers
from facr.frontends.mediapipe import SEEN_AUS

# scikit-image's lfw_subset (25x25 grey, upscaled): a clear smile, or clearly none, by eye
LFW_SMILE = (1, 18, 21, 22)
LFW_NO_SMILE = (3, 5, 12, 14)


def _lfw(i: int, side: int = 200) -> np.ndarray:
    gray = data.lfw_subset()[i]
    g = cv2.resize((gray * 255).round().astype(np.uint8), (side, side), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2))


def _save(path, rgb):
    Image.fromarray(rgb).save(path)
    return path


def _rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def astronaut(tmp_path):
    return _save(tmp_path / "astronaut.png", data.astronaut())


@pytest.fixture
def photos(tmp_path):
    """A folder: the astronaut, 4 LFW smiles, 4 LFW faces without one, a cat, and a file that is no picture."""
    folder = tmp_path / "photos"
    folder.mkdir()
    _save(folder / "astronaut.jpg", data.astronaut())
    for i in LFW_SMILE + LFW_NO_SMILE:
        _save(folder / f"lfw{i:02d}.png", _lfw(i))
    _save(folder / "chelsea.jpg", data.chelsea())
    (folder / "broken.jpg").write_bytes(b"not a picture")
    (folder / "notes.txt").write_text("ignored: not a picture's suffix")
    return folder


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 640x480 mp4 of 6 frames: the astronaut drifting right in every frame; from frame 3 a larger LFW
    face (no smile) on the right as well, so that its rank by size would be 0 while tracking keeps 1."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    astronaut = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (400, 400))
    other = cv2.cvtColor(_lfw(5, 220), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (640, 480))
    for i in range(6):
        frame = np.full((480, 640, 3), 40, np.uint8)
        frame[40:440, 10 + 8 * i:410 + 8 * i] = astronaut
        if i >= 3:
            frame[130:350, 415:635] = other
        writer.write(frame)
    writer.release()
    return path


def _json(run_cli, *argv):
    code, out, err = run_cli("explain", *argv, "--json")
    assert code == 0, err
    return json.loads(out)


# ------------------------------------------------------------------ dispatch
def test_explain_maps_stays_the_maps_verb_and_anything_else_is_input():
    assert _route_explain(["explain", "maps", "--model", "m"]) == ["explain", "maps", "--model", "m"]
    assert _route_explain(["explain", "photo.jpg", "--json"]) == ["explain", "input", "photo.jpg", "--json"]
    assert _route_explain(["explain", "./maps"]) == ["explain", "input", "./maps"]
    assert _route_explain(["explain"]) == ["explain", "input"]
    assert _route_explain(["graph", "show", "maps"]) == ["graph", "show", "maps"]


def test_explain_maps_still_parses_its_own_flags(capsys):
    from facr.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["explain", "maps", "--image", "x.png"])
    assert stop.value.code == 2
    assert capsys.readouterr().err == ("facr: the following arguments are required: --model, --out "
                                       "(see: facr explain maps --help)\n")


def test_a_file_named_maps_is_read_as_input_when_written_dot_slash_maps(tmp_path, monkeypatch, run_cli):
    shutil.copy(_save(tmp_path / "a.png", data.astronaut()), tmp_path / "maps")  # no suffix: sniffed as a picture
    monkeypatch.chdir(tmp_path)
    assert _json(run_cli, "./maps")["faces"][0]["emotion"] == "happiness"


def test_explain_help_shows_input_usage_and_points_to_maps(capsys):
    from facr.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["explain", "--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0
    assert out.startswith("usage: facr explain [-h]") and "[INPUT]" in out and "facr explain maps --help" in out


def test_explain_without_input_or_webcam_is_one_line(run_cli):
    code, out, err = run_cli("explain")
    assert code == 2 and out == "" and err.count("\n") == 1 and "give one INPUT" in err


# ------------------------------------------------------------------ one photo
def test_astronaut_reads_happiness_with_au12_invoked(astronaut, run_cli):
    doc = _json(run_cli, astronaut)
    assert doc["kind"] == "image" and doc["n_faces"] == 1 and doc["not_coded"] == []
    face = doc["faces"][0]
    assert set(face) >= {"aus", "probabilities", "emotion", "invoked_aus"}
    assert sorted(face["aus"]) == sorted(SEEN_AUS)
    assert face["emotion"] == "happiness" and "AU12" in face["invoked_aus"]
    assert face["probabilities"]["happiness"] > 0.8
    assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-3)
    assert face["aus"]["AU12"] > 0.9 and face["delta"]["AU12"] > 1.0  # removing the smile drops happiness
    assert face["check"]["sens_hits"] == face["check"]["sens_pairs"] == 1  # Pa(happiness) ∩ seen AUs = {AU12}
    x0, y0, x1, y1 = face["box"]
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 200  # her face, not the suit or the helmet
    print(f"astronaut: {face['emotion']} p={face['probabilities']['happiness']:.2f} invoked {face['invoked_aus']}")


def test_the_rows_equal_the_heads_own_reading_of_the_front_ends_faces(astronaut):
    """The command's path (one batched do() per face, the audit's pair test) agrees with the head module."""
    from facr.frontends.head import load_default_head, read_faces
    from facr.frontends.mediapipe import MediaPipeFrontend

    summary = run.explain(run.ExplainOptions(input=str(astronaut), json=True, progress=False, print_faces=False))
    head, graph = load_default_head()
    with MediaPipeFrontend(aus=head.config.aus) as fe:
        (mine,) = read_faces(head, graph, fe.read(data.astronaut()))
    face = summary.faces[0]
    assert face["emotion"] == mine.emotion and face["invoked_aus"] == mine.invoked
    for c, p in mine.probabilities.items():
        assert face["probabilities"][c] == pytest.approx(p, abs=1e-4)
    k = mine.aus.index("AU12")
    assert face["delta"]["AU12"] == pytest.approx(mine.delta[k, head.config.classes.index("happiness")], abs=1e-3)


def test_a_photo_without_a_face_is_one_line_and_exit_2_and_writes_nothing(tmp_path, run_cli):
    cat = _save(tmp_path / "chelsea.png", data.chelsea())
    out = tmp_path / "r.csv"
    code, stdout, err = run_cli("explain", cat, "--out", out)
    assert code == 2 and stdout == "" and not out.exists()
    assert err == f"facr: {cat}: no face found (451x300 picture; MediaPipe's face detector on the whole picture and " \
                  "on tiles)\n"


@pytest.mark.parametrize("name", ["fake.jpg", "fake.dat"])
def test_a_file_that_is_not_a_picture_is_one_line(tmp_path, run_cli, name):
    bad = tmp_path / name
    bad.write_bytes(b"\x00not a picture" * 10)
    code, _, err = run_cli("explain", bad)
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"facr: {bad}: not an image")


# ------------------------------------------------------------------ a folder
def _eye_agreement(rows: list[dict]) -> int:
    """How many photos read as a person sees them: smiles as happiness with AU12 invoked, the rest not."""
    hits = 0
    for row in rows:
        name = row["input"].rsplit("/", 1)[-1]
        smile = name == "astronaut.jpg" or any(name == f"lfw{i:02d}.png" for i in LFW_SMILE)
        happy = row["emotion"] == "happiness" and "AU12" in row["invoked_aus"].split(";")
        hits += happy == smile
    return hits


def test_a_folder_gives_a_row_per_face_and_counts_the_pictures_without_one(photos, tmp_path, run_cli):
    out = tmp_path / "r.csv"
    code, stdout, err = run_cli("explain", photos, "--out", out, "--no-progress")
    assert code == 0, err
    rows = _rows(out)
    assert len(rows) == 9 and {r["face_id"] for r in rows} == {"0"}
    assert "9 face(s) in 10 picture(s); 1 picture(s) without a face (chelsea.jpg)" in stdout
    assert "1 file(s) skipped, not pictures: broken.jpg" in stdout
    header = list(rows[0])
    assert header[:12] == ["input", "frame", "timestamp", "face_id", *writers.RECT]
    assert [h for h in header if h.startswith("AU")] == [writers.au_column(a) for a in SEEN_AUS]
    assert {"happiness", "neutral", "emotion", "invoked_aus", "delta_AU12", "sens_hits", "x_67", "y_0"} <= set(header)
    assert _eye_agreement(rows) == 9


def test_the_folder_check_fails_when_the_front_end_gives_noise(photos, tmp_path, monkeypatch):
    """The same photos with the front end's z replaced by noise: the reading no longer follows the faces."""
    from facr.frontends.mediapipe import BlendshapeMap

    rng = np.random.default_rng(0)

    def noise(self, scores, aus):
        return rng.random(len(aus)).astype(np.float32), np.array([a in self.weights for a in aus])

    monkeypatch.setattr(BlendshapeMap, "z", noise)
    out = tmp_path / "noise.csv"
    run.explain(run.ExplainOptions(input=str(photos), out=str(out), progress=False, print_faces=False))
    rows = _rows(out)
    assert len(rows) == 9 and _eye_agreement(rows) < 7


def test_a_folder_without_pictures_is_one_line(tmp_path, run_cli):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("explain", tmp_path / "empty")
    assert code == 2 and err == f"facr: {tmp_path / 'empty'}: no pictures (.jpg, .jpeg, .png, .bmp, .webp, .tif, " \
                                ".tiff) in this folder\n"


def test_progress_bar_on_a_folder_and_none_with_no_progress(photos, tmp_path, capsys, run_cli):
    run.explain(run.ExplainOptions(input=str(photos), out=str(tmp_path / "a.csv"), progress=True, print_faces=False))
    assert "explain" in capsys.readouterr().err  # tqdm's bar (stderr)
    code, _, err = run_cli("explain", photos, "--out", tmp_path / "b.csv", "--no-progress")
    assert code == 0 and err == ""


def test_results_csv_is_a_pyfeat_table_that_reads_back_to_the_same_emotions(photos, tmp_path, run_cli):
    first = tmp_path / "first.csv"
    assert run_cli("explain", photos, "--out", first)[0] == 0
    again = _json(run_cli, first)
    assert again["kind"] == "table" and again["not_coded"] == []
    assert [f["emotion"] for f in again["faces"]] == [r["emotion"] for r in _rows(first)]


# ------------------------------------------------------------------ output folders
def test_out_dir_follows_the_output_folder_rules(astronaut, tmp_path, run_cli):
    out = tmp_path / "res"
    assert run_cli("explain", astronaut, "--out", out, "--annotate")[0] == 0
    assert (out / run.RESULTS).exists() and (out / ".facr-output.json").exists()
    assert cv2.imread(str(out / "annotated" / "astronaut.png")).shape == (512, 512, 3)
    code, _, err = run_cli("explain", astronaut, "--out", out)
    assert code == 2 and "pass --overwrite to replace it" in err and err.count("\n") == 1
    assert run_cli("explain", astronaut, "--out", out, "--overwrite")[0] == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("a user's file")
    code, _, err = run_cli("explain", astronaut, "--out", mine, "--overwrite")
    assert code == 2 and "facr did not write it" in err and (mine / "keep.txt").exists()


def test_annotate_needs_an_out_folder(astronaut, tmp_path, run_cli):
    for extra in ([], ["--out", tmp_path / "r.csv"]):
        code, _, err = run_cli("explain", astronaut, "--annotate", *extra)
        assert code == 2 and err == "facr: --annotate: draws into a folder: give --out DIR\n"


# ------------------------------------------------------------------ video
def test_a_video_gives_a_row_per_face_and_frame_with_tracked_ids_a_timeline_and_an_annotated_video(
        clip, tmp_path, run_cli):
    out = tmp_path / "clip-out"
    code, stdout, err = run_cli("explain", clip, "--out", out, "--annotate", "--no-progress")
    assert code == 0, err
    rows = _rows(out / run.RESULTS)
    by_frame = {}
    for r in rows:
        by_frame.setdefault(int(r["frame"]), []).append(r)
    assert sorted(by_frame) == list(range(6))
    assert [len(by_frame[f]) for f in range(6)] == [1, 1, 1, 2, 2, 2]
    for f in range(6):
        astronaut = min(by_frame[f], key=lambda r: float(r["FaceRectX"]))
        assert astronaut["face_id"] == "0" and astronaut["emotion"] == "happiness"  # she keeps id 0 throughout
        assert float(astronaut["timestamp"]) == pytest.approx(f / 10)
    for f in (3, 4, 5):  # the larger newcomer (rank 0 by size) is face 1, and reads as no smile
        newcomer = max(by_frame[f], key=lambda r: float(r["FaceRectX"]))
        assert newcomer["face_id"] == "1" and newcomer["emotion"] != "happiness"
    assert "9 face row(s) in 6 frame(s), 0 frame(s) without a face" in stdout
    assert Image.open(out / run.TIMELINE).size == (1000, 600)
    cap = cv2.VideoCapture(str(out / run.ANNOTATED))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    assert len(frames) == 6 and frames[0].shape == (480, 640, 3)


def test_a_video_that_does_not_decode_is_one_line_on_stderr(tmp_path, capfd):
    from facr.cli import main

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    code = main(["explain", str(bad)])
    out, err = capfd.readouterr()  # fd level: FFmpeg's own "moov atom not found" would show here
    assert code == 2 and out == ""
    assert err == f"facr: {bad}: cannot decode the video (OpenCV's FFmpeg cannot open it)\n"


def test_webcam_without_a_camera_is_one_line(monkeypatch, capfd):
    from facr.cli import main

    monkeypatch.setattr(sources, "CAMERA", 97)  # an index no machine has: the real cv2.VideoCapture path fails
    code = main(["explain", "--webcam"])
    out, err = capfd.readouterr()
    assert code == 2 and out == "" and err == "facr: --webcam: no camera: cv2.VideoCapture(97) cannot open one\n"


# ------------------------------------------------------------------ AU tables
# Each tool's layout, written by hand; rows are EMFACS prototypes (happiness: AU6+12, sadness: AU1+4+15,
# surprise: AU1+2+5+26) at intensity 3 / presence 1 / probability 0.9, the other AUs absent.
PROTOTYPES = {"happiness": {1: 0, 2: 0, 4: 0, 5: 0, 6: 1, 12: 1, 15: 0, 26: 0},
              "sadness": {1: 1, 2: 0, 4: 1, 5: 0, 6: 0, 12: 0, 15: 1, 26: 0},
              "surprise": {1: 1, 2: 1, 4: 0, 5: 1, 6: 0, 12: 0, 15: 0, 26: 1}}


def _openface(order):
    aus = sorted(PROTOTYPES["happiness"])
    head = ", ".join(["frame", "face_id", "timestamp", "confidence", "success", *(f"AU{n:02d}_r" for n in aus),
                      *(f"AU{n:02d}_c" for n in aus)])
    rows = [", ".join([str(i + 1), "0", f"{i / 30:.3f}", "0.98", "1", *(f"{3.0 * PROTOTYPES[e][n]:.2f}" for n in aus),
                       *(str(PROTOTYPES[e][n]) for n in aus)]) for i, e in enumerate(order)]
    return "\n".join([head, *rows]) + "\n"


def _pyfeat(order):
    aus = sorted(PROTOTYPES["happiness"])
    head = ",".join(["frame", "FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight", "FaceScore",
                     *(f"AU{n:02d}" for n in aus), "anger", "happiness", "input"])
    rows = [",".join([str(i), "10", "20", "100", "120", "0.99", *("0.9" if PROTOTYPES[e][n] else "0.05" for n in aus),
                      "0.1", "0.1", f"face{i}.jpg"]) for i, e in enumerate(order)]
    return "\n".join([head, *rows]) + "\n"


def _libreface(order):
    detection = (1, 2, 4, 6, 12, 15)  # LibreFace detects these (of the prototypes' AUs) ...
    intensity = (1, 2, 4, 5, 6, 12, 15, 26)  # ... and rates these
    head = ",".join(["frame_idx", "frame_time_in_ms", "pitch", "yaw", "roll", *(f"au_{n}" for n in detection),
                     *(f"au_{n}_intensity" for n in intensity), "facial_expression"])
    rows = [",".join([str(i), str(33 * i), "1.0", "2.0", "0.5", *(str(PROTOTYPES[e][n]) for n in detection),
                      *(f"{3.0 * PROTOTYPES[e][n]:.1f}" for n in intensity), "Neutral"]) for i, e in enumerate(order)]
    return "\n".join([head, *rows]) + "\n"


def _openface3(order):
    aus = (1, 2, 4, 6, 9, 12, 25, 26)  # its action_units cell, in that order
    rows = ["timestamp,image_path,face_id,face_detection,landmarks,emotion,gaze_yaw,gaze_pitch,action_units"]
    for i, e in enumerate(order):
        scores = [[0.9 if PROTOTYPES[e].get(n) else 0.05 for n in aus]]
        rows.append(f'2025-01-01,face{i}.jpg,0,"[10.0, 20.0, 110.0, 140.0, 0.99]","",{i},0.1,0.0,"{scores}"')
    return "\n".join(rows) + "\n"


WRITERS = {"openface": _openface, "pyfeat": _pyfeat, "libreface": _libreface, "openface3": _openface3}


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_prototype_rows_of_each_table_format_read_as_their_emotion_with_its_aus_invoked(tmp_path, run_cli, fmt):
    from facr.graph import resolve_graph

    # OpenFace 3.0 codes 8 AUs, 5 of them among the head's (AU1, 2, 4, 12, 26): sadness without its AU15 there
    order = ["happiness", "sadness", "surprise"]
    path = tmp_path / f"{fmt}.csv"
    path.write_text(WRITERS[fmt](order), encoding="utf-8")
    doc = _json(run_cli, path, "--format", fmt)
    assert doc["kind"] == "table" and [f["emotion"] for f in doc["faces"]] == order
    emfacs = resolve_graph("emfacs")
    for face, emotion in zip(doc["faces"], order):
        shown = {a for a in emfacs.parents(emotion) if a in face["aus"]}  # the prototype's AUs this table codes
        assert shown and shown <= set(face["invoked_aus"]), (emotion, face["invoked_aus"])
    assert doc == _json(run_cli, path)  # the header alone says which tool wrote it


def test_a_table_names_the_heads_aus_it_does_not_code(tmp_path, run_cli):
    path = tmp_path / "of.csv"
    path.write_text(_openface(["happiness"]), encoding="utf-8")
    doc = _json(run_cli, path)
    assert doc["not_coded"] == ["AU7", "AU10", "AU14", "AU16", "AU17", "AU20", "AU24", "AU43"]
    assert sorted(doc["aus"], key=lambda a: int(a[2:])) == ["AU1", "AU2", "AU4", "AU5", "AU12", "AU15", "AU26"]
    code, out, _ = run_cli("explain", path)
    assert code == 0 and "not coded by this input: AU7, AU10, AU14, AU16, AU17, AU20, AU24, AU43" in out


def test_a_table_with_unknown_columns_is_one_line(tmp_path, run_cli):
    path = tmp_path / "mystery.csv"
    path.write_text("a,b,c\n1,2,3\n", encoding="utf-8")
    code, out, err = run_cli("explain", path, "--out", tmp_path / "r.csv")
    assert code == 2 and out == "" and not (tmp_path / "r.csv").exists()
    assert err == (f"facr: {path}: no AU column among the columns (a, b, c); facr reads openface, openface3, pyfeat, "
                   "libreface tables (pass --format to name one)\n")


def test_out_is_never_the_input_table(tmp_path, run_cli):
    path = tmp_path / "of.csv"
    path.write_text(_openface(["happiness"]), encoding="utf-8")
    code, _, err = run_cli("explain", path, "--out", path)
    assert code == 2 and path.read_text().startswith("frame, face_id")
    assert err == (f"facr: {path}: is the input {path} itself: facr never writes over what it reads; "
                   "choose another --out\n")


# ------------------------------------------------------------------ other models
def test_a_head_checkpoint_over_aus_mediapipe_cannot_see_names_them_not_coded(astronaut, tmp_path, run_cli):
    head = tmp_path / "scm-head"
    code, _, err = run_cli("train", "head", "--frontend", "scm", "--n", 400, "--epochs", 1, "--out", head,
                           "--no-progress")
    assert code == 0, err
    doc = _json(run_cli, astronaut, "--model", head)
    assert doc["not_coded"] == ["AU6", "AU9", "AU23", "AU25"]
    assert set(doc["faces"][0]["aus"]) == set(SEEN_AUS) and doc["model"] == str(head)
    code, _, err = run_cli("explain", astronaut, "--model", tmp_path)
    assert code == 2 and "not a facr AU head (facr train head) or reasoner checkpoint" in err


def test_a_reasoner_checkpoint_reads_the_face_crop_with_its_encoder(reasoner, astronaut, run_cli):
    import torch

    from facr.chat.face import square_crop
    from facr.data.torch_data import load_image
    from facr.frontends.mediapipe import MediaPipeFrontend
    from facr.models.reasoner import load_reasoner

    _, run_dir = reasoner
    doc = _json(run_cli, astronaut, "--model", run_dir)
    face = doc["faces"][0]
    model, _ = load_reasoner(run_dir / "model")
    assert doc["not_coded"] == [] and list(face["aus"]) == sorted(model.config.aus)
    with MediaPipeFrontend() as fe:
        (found,) = fe.read(data.astronaut())
    x0, y0, x1, y1 = found.box  # the chat's crop (margin 1.3) around MediaPipe's box, at the encoder's size
    crop = square_crop(data.astronaut(), (round(x0), round(y0), round(x1 - x0), round(y1 - y0)))
    pixels = load_image(np.ascontiguousarray(crop), model.config.encoder.image_size)
    with torch.no_grad():
        z = model.latent(torch.from_numpy(np.array(pixels))[None]).z[0]
    for k, a in enumerate(model.config.aus):
        assert face["aus"][a] == pytest.approx(float(z[k]), abs=1e-4)


def test_a_verbalizer_adds_its_rationale_and_one_for_other_aus_is_refused(reasoner, trained_verbalizer, astronaut,
                                                                          tmp_path, run_cli):
    _, run_dir = reasoner
    verbalizer, _ = trained_verbalizer
    out = tmp_path / "r.csv"
    code, _, err = run_cli("explain", astronaut, "--model", run_dir, "--verbalizer", verbalizer, "--out", out)
    assert code == 0, err
    (row,) = _rows(out)
    assert row["emotion"] in row["rationale"]  # the plan states ĉ
    code, out_text, err = run_cli("explain", astronaut, "--verbalizer", verbalizer)  # the shipped head: 15 AUs
    assert code == 2 and out_text == "" and err.count("\n") == 1
    assert err.startswith(f"facr: {verbalizer}: the verbalizer speaks for the AUs ")
