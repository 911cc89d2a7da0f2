"""Pictures in: read, refuse, detect (OpenCV's shipped Haar cascade), crop."""

import numpy as np
import pytest
from PIL import Image

from facr.chat.face import MAX_SIDE, FaceError, detect_faces, prepare_face, read_image, square_crop
from facr.data.synth import SynthConfig
from facr.data.torch_data import load_image


def test_the_face_in_a_photo_is_found_and_cropped_square(astronaut):
    rgb = read_image(astronaut)
    boxes = detect_faces(rgb)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert 150 < x < 210 and 40 < y < 100 and 80 < w < 120  # her face, left of centre, top third
    face = prepare_face(astronaut, 64)
    assert face.pixels.shape == (64, 64, 3) and face.pixels.dtype == np.uint8
    assert face.box == boxes[0] and "cropped" in face.note
    expected = load_image(np.ascontiguousarray(square_crop(rgb, boxes[0])), 64)
    assert np.array_equal(face.pixels, expected)


def test_aligned_benchmark_faces_are_found_and_used_whole(tmp_path):
    from datasets import load_from_disk

    from facr.data.synth import write_synth

    write_synth(tmp_path / "s", SynthConfig(n=16, seed=3, subjects=3, size=112), workers=1)
    images = [np.asarray(r["image"].convert("RGB")) for r in load_from_disk(str(tmp_path / "s"))["train"]]
    found = 0
    for img in images:
        try:
            face = prepare_face(img, 112)
        except FaceError:
            continue
        found += 1
        assert "used whole" in face.note  # the face fills the frame: no crop, no shift
        assert np.array_equal(face.pixels, img)
    assert found >= 0.6 * len(images)


def test_square_crop_repeats_the_edge_outside_the_picture():
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[:, 0] = 200  # left column bright
    crop = square_crop(rgb, (0, 10, 20, 20), margin=1.5)
    assert crop.shape == (30, 30, 3)
    assert (crop[:, :5] == 200).all()  # the padding repeats the bright edge column


def test_no_face_is_a_clear_error():
    with pytest.raises(FaceError, match=r"no face found \(300x200 picture"):
        prepare_face(np.full((200, 300, 3), 128, np.uint8), 64, name="grey.png")


def test_skipping_detection_takes_the_picture_as_the_crop():
    face = prepare_face(np.full((200, 300, 3), 128, np.uint8), 64, detect=False)
    assert face.pixels.shape == (64, 64, 3) and face.box is None


def test_not_an_image_and_too_large_are_refused(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("these are not pixels")
    with pytest.raises(FaceError, match=r"notes\.png: not an image"):
        read_image(bad)
    big = tmp_path / "big.png"
    Image.new("RGB", (MAX_SIDE + 1, 8)).save(big)
    with pytest.raises(FaceError, match="too large"):
        read_image(big)
    with pytest.raises(FaceError, match="no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(FaceError, match="not an RGB image"):
        read_image(np.zeros((4, 4, 3, 2), np.uint8))
