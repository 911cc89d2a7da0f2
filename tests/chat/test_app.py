"""The app as a person's browser reaches it: launched on a free loopback port, driven by gradio_client."""

import json

import pytest
from gradio_client import Client, handle_file

from facr.chat import prepare_face


def text_of(message) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def test_the_gallery_holds_one_test_face_per_labelled_class(served, explainer):
    _, gallery = served
    captions = [c for _, c in gallery]
    classes = [c.split(" · ")[0] for c in captions]
    assert len(set(classes)) == len(classes) >= 4 and set(classes) <= set(explainer.classes)


def test_upload_a_photo_then_ask_a_what_if_that_changes_the_prediction(served, explainer, astronaut, flip, tmp_path):
    from PIL import Image

    url, _ = served
    client = Client(url, verbose=False)
    seen, label, bars, parents, status, chat, where = client.predict(handle_file(str(astronaut)), False,
                                                                     api_name="/see")
    assert where is None  # a new face clears the last overlay
    expected = explainer.read(prepare_face(astronaut, explainer.image_size).pixels)
    assert label["label"] == expected.predicted
    probs = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert probs[expected.predicted] == pytest.approx(expected.prob(expected.predicted), abs=1e-3)
    assert "cropped" in status and f"I see **{expected.predicted}**" in text_of(chat[-1])
    assert Image.open(seen).size[0] % explainer.image_size == 0  # the crop the model saw, enlarged
    assert Image.open(bars).size[0] > 200 and Image.open(parents).size[0] > 200

    # a face (saved as a picture, uploaded as an aligned crop) where a single do() flips the prediction
    pixels, au, value = flip
    path = tmp_path / "flip.png"
    Image.fromarray(pixels).save(path)
    before = explainer.read(pixels)
    _, label, _, _, status, _, _ = client.predict(handle_file(str(path)), True, api_name="/see")
    assert label["label"] == before.predicted, status
    chat, box, label, *_ = client.predict(f"what if {au} were at {value}?", [], api_name="/ask")
    after = explainer.what_if(before, {au: value})
    assert label["label"] == after.predicted != before.predicted
    answer = text_of(chat[-1])
    assert f"The prediction **changes**: {before.predicted} → **{after.predicted}**" in answer
    assert explainer.rationale(after) in answer and box == ""
    # "where is AU12?": the answer locates it and the overlay panel shows the maps
    chat, box, label, bars, parents, where = client.predict("where is AU12?", [], api_name="/ask")
    answer = text_of(chat[-1])
    assert "Where each AU is seen" in answer and "| AU12 lip corner puller |" in answer
    assert Image.open(where).size[0] > 200


def test_a_bad_graph_file_is_refused_with_its_one_line_error_and_emfacs_is_one_click(served, tmp_path, repo):
    url, _ = served
    client = Client(url, verbose=False)
    doc = json.loads((repo / "graphs" / "emfacs.json").read_text())
    doc["edges"][3]["sign"] = 2  # one bad polarity in an otherwise verified graph
    bad = tmp_path / "my-graph.json"
    bad.write_text(json.dumps(doc))
    status, *_ = client.predict(handle_file(str(bad)), api_name="/graph")
    assert status.startswith("**Error:** facr: my-graph.json: ") and "sign" in status and "\n" not in status
    assert status.endswith("still using `synth-truth-a`")
    good = tmp_path / "verified.json"
    good.write_text((repo / "graphs" / "emfacs.json").read_text())
    status, *_ = client.predict(handle_file(str(good)), api_name="/graph")
    assert status.startswith("Graph G: `emfacs")
    status, *_ = client.predict(api_name="/emfacs")
    assert status.startswith("Graph G: `emfacs")
    chat, *_ = client.predict("which AUs matter for sadness?", [], api_name="/ask")
    assert "Give me a face first" in text_of(chat[-1])  # a new client is a new conversation


def test_a_picture_without_a_face_gets_a_message_and_the_app_stays_up(served, astronaut, tmp_path):
    from PIL import Image

    url, _ = served
    client = Client(url, verbose=False)
    grey = tmp_path / "wall.png"
    Image.new("RGB", (300, 200), (128, 128, 128)).save(grey)
    seen, _, _, _, status, _, _ = client.predict(handle_file(str(grey)), False, api_name="/see")
    assert status.startswith("**Error:** facr: your picture: no face found (300x200 picture") and seen is None
    _, label, _, _, status, _, _ = client.predict(handle_file(str(astronaut)), False, api_name="/see")
    assert status.startswith("**Face:** face found") and label["label"]
