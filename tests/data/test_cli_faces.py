"""`facr data faces`: real photos through the MediaPipe front end become an AffectNet-layout folder that
`facr audit --pixel-cf` occludes on the face's own landmarks (scikit-image's astronaut: a real photo)."""

import json

import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data

from facr.data import formats


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage_data.astronaut()).save(root / "astronaut.png")
    Image.fromarray(np.full((96, 128, 3), 200, dtype=np.uint8)).save(root / "wall.png")
    return root


def test_a_photo_becomes_a_folder_the_pixel_audit_occludes_on_its_landmarks(photos, reasoner, tmp_path, run_cli):
    _, run = reasoner
    out = tmp_path / "real"
    code, stdout, err = run_cli("data", "faces", f"{photos / 'astronaut.png'}=happiness", "--out", out, "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["n"] == 1 and summary["faces"][0]["emotion"] == "happiness"
    x, y, w, h = summary["faces"][0]["box_in_photo"]
    assert 150 < x < 220 and 40 < y < 110 and 60 < w < 140 and 60 < h < 140  # the astronaut's face, not the flag
    # the image is the face cropped square as the chat frames it, cut from the photo
    ox, oy, side = summary["faces"][0]["crop"]
    crop = np.asarray(Image.open(out / "Manually_Annotated" / "Manually_Annotated_Images" / "0000_astronaut.png"))
    assert crop.shape == (side, side, 3) and side > max(w, h)
    assert np.array_equal(crop, skimage_data.astronaut()[oy:oy + side, ox:ox + side])
    records = formats.load("affectnet", out).records
    assert len(records) == 1 and records[0].emotion == "happiness" and records[0].split == "val"
    assert records[0].meta["face_box"] == [x - ox, y - oy, w, h]
    lm = np.asarray(records[0].meta["landmarks"])
    assert lm.shape == (68, 2)
    fx, fy = x - ox, y - oy  # the 68 points lie on that face, in the crop's pixels
    inside = ((lm >= 0) & (lm < side)).all(axis=1)
    assert inside.mean() > 0.9  # the chat's framing may cut the chin's lowest points off
    cx, cy = lm.mean(axis=0)
    assert fx < cx < fx + w and fy < cy < fy + h
    code, stdout, err = run_cli("audit", "--model", run, "--data", out, "--format", "affectnet", "--split", "all",
                                "--pixel-cf", "--json", "--no-progress")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["pixel_cf_method"] == "occlusion" and m["pixel_n_faces"] == 1 and m["pixel_n_pairs"] >= 1
    assert m["nuisance_z_shift"] is None and m["pixel_fill"].startswith("inpaint")
    # the same folder again: refused unless --overwrite, then replaced
    code, _, err = run_cli("data", "faces", photos / "astronaut.png", "--emotion", "neutral", "--out", out)
    assert code == 2 and "--overwrite" in err
    code, _, err = run_cli("data", "faces", photos / "astronaut.png", "--emotion", "neutral", "--out", out,
                           "--overwrite")
    assert code == 0, err
    assert formats.load("affectnet", out).records[0].emotion == "neutral"


@pytest.mark.parametrize("args, message", [
    (["wall.png=neutral"], "wall.png: no face found (128x96 picture"),
    (["astronaut.png"], "astronaut.png: no emotion: give PHOTO=EMOTION or --emotion"),
    (["astronaut.png=glee"], "astronaut.png: emotion must be one of neutral, happiness"),
    (["missing.png=neutral"], "missing.png: no such photo"),
])
def test_bad_photos_are_one_line_and_write_nothing(photos, tmp_path, run_cli, args, message):
    out = tmp_path / "real"
    code, _, err = run_cli("data", "faces", *[f"{photos}/{a}" for a in args], "--out", out)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not out.exists()
