"""The chat on real faces: a photo read by MediaPipe's front end and the shipped real-face head, through the same
Explainer machinery as the pixel reasoner's (readings, what-ifs through the one do(), the check against G, rationales),
with "where is AU12?" answered on the photo's own landmarks and the AUs the front end cannot see named, never 0.

The photo is scikit-image's astronaut (Eileen Collins, NASA, public domain): one frontal face, smiling (by eye).
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from facr.chat import ChatSession, Explainer, FaceError
from facr.chat.ui import FALLBACK, live_reading
from facr.frontends.mediapipe import NOT_SEEN, to_ibug68
from facr.utils import free_port

PHOTO = skdata.astronaut()


@pytest.fixture(scope="module")
def realface():
    """The shipped real-face head behind MediaPipe's front end (as `facr chat --frontend mediapipe` loads it)."""
    explainer = Explainer.load_frontend("mediapipe")
    yield explainer
    explainer.frontend.close()


@pytest.fixture(scope="module")
def scm_head(tmp_path_factory):
    """A small head over every AU the benchmark's SCM draws (AU6, AU9, AU23 and AU25 among them: the four the
    MediaPipe front end cannot see), trained in about a second."""
    from facr.frontends.head import HeadTrainConfig, train_head

    out = tmp_path_factory.mktemp("scm-head") / "head"
    train_head(HeadTrainConfig(frontend="scm", n=2000, subjects=20, epochs=3, out=str(out)), progress=False)
    return out


def seen(explainer, source=PHOTO, name="astronaut.png"):
    """A session that has read ``source`` as the app reads an upload."""
    session = ChatSession(explainer)
    face = explainer.prepare(source, name=name)
    session.see(face.pixels, face.note, face=face.reading)
    return session, face


def last(stream) -> str:
    *_, answer = stream
    return answer


# ------------------------------------------------------------------ the reading
def test_the_astronaut_reads_as_happiness_with_au12_invoked_through_the_front_end_and_the_shipped_head(realface):
    from facr.frontends.head import load_default_head, read_faces

    session, face = seen(realface)
    r = session.face
    assert face.n_faces == 1 and face.note.startswith("face found by MediaPipe at x=")
    assert r.predicted == "happiness" and r.prob("happiness") > 0.8  # measured: 0.94
    check = realface.check(r)
    assert "AU12" in check.invoked and "AU12" in r.active and check.sens_hits >= 1
    # z is the front end's, in the head's order; ŷ is what the head's own reader gives for that face
    k = realface.aus.index("AU12")
    assert float(r.z[k]) == pytest.approx(float(face.reading.z[face.reading.aus.index("AU12")]))
    head, graph = load_default_head()
    direct = read_faces(head, graph, [face.reading])[0]
    assert r.prob("happiness") == pytest.approx(direct.probabilities["happiness"], abs=1e-5)
    assert direct.invoked == check.invoked
    # the rationale comes from the effects (no verbalizer), naming the AU that drives the decision
    assert realface.verbalizer is None
    assert realface.rationale(r) == "The face shows happiness because of AU12 (lip corner puller)."


def test_what_if_au12_were_off_moves_the_prediction_through_the_one_do(realface, monkeypatch):
    import facr.chat.explainer as explainer_module

    calls = []
    real_do = explainer_module.do

    def spy(z, k, value):
        calls.append((realface.aus[k], value))
        return real_do(z, k, value)

    monkeypatch.setattr(explainer_module, "do", spy)
    session, _ = seen(realface)
    before = session.face
    answer = last(session.ask("what if AU12 were off?"))
    after = session.current
    assert calls == [("AU12", 0.0)] and after.settings == {"AU12": 0.0}
    # ŷ under the what-if is the do(z_12 = 0) row the effects already held: one intervention, two uses
    k = realface.aus.index("AU12")
    torch.testing.assert_close(after.logits, before.effects.cf_logits[0, k])
    assert after.prob("happiness") < before.prob("happiness") - 0.5  # measured: 0.94 -> 0.13
    assert after.predicted != "happiness"
    assert f"The prediction **changes**: happiness → **{after.predicted}**" in answer
    assert "(was AU12 = 1.00)" in answer or re.search(r"\(was AU12 = 0\.\d\d\)", answer)
    assert "no longer named: AU12" in answer
    assert "Back to the face as seen: **happiness**" in last(session.ask("reset"))


def test_where_is_au12_is_the_lip_corners_on_the_photos_own_landmarks(realface):
    session, face = seen(realface)
    answer = last(session.ask("where is AU12?"))
    assert "this face's own landmarks" in answer and "| AU12 lip corner puller | 1.00 |" in answer
    x, y = (float(v) for v in re.search(r"mouth, centred at x = (\d+), y = (\d+) in the picture", answer).groups())
    corners = to_ibug68(face.reading.landmarks)[[48, 54]]
    assert np.min(np.hypot(corners[:, 0] - x, corners[:, 1] - y)) < 3.0  # on a lip corner of this photo
    brows = to_ibug68(face.reading.landmarks)[17:27]
    assert y > brows[:, 1].max() + 20  # below the brows, in the picture's pixels
    assert session.overlay.ndim == 3 and session.overlay.shape[1] > 200
    # the map itself: AU12's region is brightest on the mouth, AU1's above the inner brows
    fm = realface.where(face.pixels, ["AU12", "AU1"], reading=session.face)
    assert fm.method == "landmarks" and set(fm.heat) == {"AU12", "AU1"}
    assert fm.summary()["aus"]["AU12"]["peak"][0] > fm.summary()["aus"]["AU1"]["peak"][0] + 0.3


def test_the_aus_the_front_end_cannot_see_are_named(realface):
    assert realface.not_seen() == ["AU6", "AU9", "AU23", "AU25"] == sorted(NOT_SEEN, key=lambda a: int(a[2:]))
    session, _ = seen(realface)
    why = last(session.ask("why?"))
    assert "Parents of happiness in G this front end cannot see: AU6" in why
    assert "AU6 is not seen by this front end (cheek raiser" in last(session.ask("AU6?"))
    matters = last(session.ask("which AUs matter for happiness?"))
    assert "**AU6** (cheek raiser) — weight 1.00, emfacs — not seen by this front end" in matters


def test_an_au_in_the_heads_latent_the_front_end_cannot_see_is_shown_as_not_seen_never_as_0(scm_head):
    explainer = Explainer.load_frontend("mediapipe", str(scm_head))
    try:
        session, _ = seen(explainer)
        r = session.face
        blind = [a for a in explainer.aus if not r.seen(a)]
        assert blind == ["AU6", "AU9", "AU23", "AU25"]
        assert all(float(r.z[explainer.aus.index(a)]) == 0.0 for a in blind)  # 0 to the head, not a reading
        why = last(session.ask("why?"))
        assert "| AU6 cheek raiser | not seen |" in why and "| AU6 cheek raiser | 0.00" not in why
        assert "not seen by this front end" in why
        assert "z = not seen (the front end cannot see it: cheek raiser" in last(session.ask("AU6?"))
        # a do() on it is still a do(): the value is the one set, and the answer says it was not seen before
        answer = last(session.ask("what if AU6 were at 0.9?"))
        assert "do(AU6 = 0.9) (was AU6 = not seen)" in answer and session.current.z_text("AU6") == "0.90"
    finally:
        explainer.frontend.close()


def test_a_picture_without_a_face_is_one_clear_message(realface):
    grey = np.full((200, 300, 3), 128, np.uint8)
    with pytest.raises(FaceError) as err:
        realface.prepare(grey, name="wall.png")
    assert str(err.value) == ("wall.png: no face found (300x200 picture; MediaPipe's face detector). Try a frontal, "
                              "well-lit face")
    with pytest.raises(FaceError, match="no face found"):
        ChatSession(realface).see(grey)


def test_a_verbalizer_is_used_only_when_its_au_order_matches_the_heads(chat_models):
    from facr.errors import FacrError

    _, verbalizer = chat_models  # trained on the benchmark reasoner's latent, not the head's 15 MediaPipe AUs
    with pytest.raises(FacrError, match="the verbalizer was trained on a reasoner with other AUs"):
        Explainer.load_frontend("mediapipe", verbalizer=str(verbalizer))


def test_the_live_webcam_reading_is_the_same_reading_per_frame(realface):
    label, bars, line = live_reading(realface, PHOTO)
    assert max(label, key=label.get) == "happiness" and line.startswith("Live: **happiness**")
    assert bars.ndim == 3 and bars.shape[1] > 200
    label, bars, line = live_reading(realface, np.zeros((240, 320, 3), np.uint8))
    assert label is None and bars is None and line == "No face in this frame."


# ------------------------------------------------------------------ the app and the CLI
def text_of(message) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def test_the_app_reads_an_uploaded_photo_answers_a_what_if_and_refuses_a_wall(realface, tmp_path):
    from gradio_client import Client, handle_file

    from facr.chat.realface import real_photos
    from facr.chat.ui import build_app, launch

    app = build_app(realface, real_photos())
    port = free_port()
    launch(app, "127.0.0.1", port, block=False)
    try:
        url = f"http://127.0.0.1:{port}/"
        photo = tmp_path / "astronaut.png"
        Image.fromarray(PHOTO).save(photo)
        client = Client(url, verbose=False)
        shown, label, bars, parents, status, chat, where = client.predict(handle_file(str(photo)), False,
                                                                         api_name="/see")
        assert label["label"] == "happiness" and status.startswith("**Face:** face found by MediaPipe")
        intro = text_of(chat[-1])
        assert "Not seen by this front end (not coded, never read as 0): AU6 (cheek raiser)" in intro
        assert Image.open(shown).size == (256, 256)  # the face crop with its landmarks
        chat, _, label, *_ = client.predict("what if AU12 were off?", [], api_name="/ask")
        assert label["label"] != "happiness" and "The prediction **changes**" in text_of(chat[-1])
        chat, *_, where = client.predict("where is AU12?", [], api_name="/ask")
        assert "mouth, centred at" in text_of(chat[-1]) and Image.open(where).size[0] > 200
        wall = tmp_path / "wall.png"
        Image.new("RGB", (300, 200), (128, 128, 128)).save(wall)
        shown, *_, status, _, _ = client.predict(handle_file(str(wall)), False, api_name="/see")
        assert not shown
        assert status.startswith("**Error:** facr: your picture: no face found (300x200 picture; MediaPipe")
        config = json.loads(urllib.request.urlopen(url + "config", timeout=10).read())
        streaming = [c for c in config["components"] if c.get("props", {}).get("elem_id") == "live"]
        assert streaming and streaming[0]["props"]["streaming"] is True
    finally:
        app.close()


def test_facr_chat_frontend_mediapipe_check_reads_the_astronaut(run_cli):
    code, out, err = run_cli("chat", "--frontend", "mediapipe", "--check")
    assert code == 0, err
    assert out.startswith("gallery face 0 (astronaut · scikit-image):\nThe reasoner says **happiness**")
    assert "| AU12 lip corner puller | 1.00 |" in out and "this front end cannot see: AU6" in out


def test_facr_chat_without_demo_checkpoints_falls_back_to_the_shipped_head_in_one_line(run_cli, tmp_path,
                                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)  # no demo-out/ here
    code, out, err = run_cli("chat", "--check")
    assert code == 0, err
    first, rest = out.split("\n", 1)
    assert first == FALLBACK and rest.startswith("gallery face 0 (astronaut · scikit-image):")
    assert "The reasoner says **happiness**" in rest


def test_facr_chat_frontend_errors_are_one_line(run_cli, tmp_path):
    code, _, err = run_cli("chat", "--frontend", "mediapipe", "--model", tmp_path / "nothing")
    assert code == 2 and err == f"facr: {tmp_path / 'nothing'}: no such head folder\n"
    code, _, err = run_cli("chat", "--frontend", "mediapipe", "--verbalizer", tmp_path / "none")
    assert code == 2 and err == f"facr: {tmp_path / 'none'}: no facr verbalizer checkpoint here\n"


def test_facr_chat_frontend_mediapipe_serves_on_loopback(tmp_path):
    port = free_port()
    env = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.Popen([sys.executable, "-m", "facr.cli", "chat", "--frontend", "mediapipe", "--port", str(port)],
                            cwd=tmp_path, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "open http://" in line:
                break
        assert lines and lines[-1].strip() == f"facr chat: open http://127.0.0.1:{port} (Ctrl-C stops it)", lines
        assert any("front end mediapipe + AU head" in x and "graph emfacs, 1 gallery faces" in x for x in lines)
        assert any(x.startswith("facr chat: Not seen by this front end") and "AU25 (lips part)" in x for x in lines)
        page = ""
        for _ in range(60):
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert "Live webcam" in page and "Ask why and what if" in page
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_effects_rationale_never_says_an_au_that_speaks_against_the_emotion_supports_it():
    """Without a verbalizer the words come from the effects: an AU whose removal raises the class's
    logit (Δ < 0) is said to speak against it, never given as a reason for it."""
    from types import SimpleNamespace

    from facr.chat.explainer import Explainer

    effects = {"AU12": 2.0, "AU6": 0.8, "AU4": -1.2, "AU15": 0.01}
    reading = SimpleNamespace(predicted="happiness", active=list(effects), effect=lambda a, c: effects[a])
    say = Explainer.effects_rationale
    assert say(SimpleNamespace(epsilon=0.1), reading) == (
        "The face shows happiness because of AU12 (lip corner puller) and AU6 (cheek raiser), although AU4 "
        "(brow lowerer) speaks against it.")
    effects.update(AU12=-0.5, AU6=-0.3)
    assert say(SimpleNamespace(epsilon=0.1), reading) == (
        "The face shows happiness, although AU4 (brow lowerer), AU12 (lip corner puller) and AU6 (cheek raiser) "
        "speak against it.")
