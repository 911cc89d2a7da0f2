"""Pictures a person (or an attacker) uploads to the chat: refused with facr's one line, before they are decoded,
and not left in Gradio's upload cache; the app answers the next picture."""

import io
import struct
import uuid
import zlib
from pathlib import Path

import httpx
import pytest
from gradio.utils import get_upload_folder
from gradio_client import Client, handle_file
from PIL import Image, ImageFile

from facr.chat.face import MAX_BYTES, MAX_SIDE, FaceError, read_image


def constant_png(path: Path, width: int, height: int) -> Path:
    """A grey PNG of any size written row by row (a 12000x12000 one is ~140 KB on disk and never held in memory)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then black pixels
    body = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def decodes(monkeypatch):
    """The pictures PIL decodes while the test runs (every decode of a file goes through ImageFile.load)."""
    seen = []
    load = ImageFile.ImageFile.load

    def recording(self):
        if self.tile:  # the data still to decode (a loaded picture has none left)
            seen.append(self.size)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording)
    return seen


def photo_bytes(fmt: str) -> bytes:
    """A small noisy picture (so the compressed stream is long enough to cut) in ``fmt``."""
    import numpy as np

    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt)
    return out.getvalue()


def cached(name: str) -> list[Path]:
    """Files called ``name`` anywhere in Gradio's upload cache."""
    return list(Path(get_upload_folder()).rglob(name))


# ---------------------------------------------------------------- facr.chat.face.read_image


def test_a_12000_square_png_of_140_kb_is_refused_from_its_header_without_decoding(tmp_path, decodes):
    bomb = constant_png(tmp_path / "bomb.png", 12000, 12000)
    assert bomb.stat().st_size < 200_000
    with pytest.raises(FaceError) as err:
        read_image(bomb, name="your picture")
    assert str(err.value).startswith("your picture: too large (over 134 million pixels, refused from its header")
    assert decodes == []  # PIL's own limit refused it in Image.open: nothing was allocated for its pixels
    assert Image.MAX_IMAGE_PIXELS == MAX_SIDE * MAX_SIDE

    wide = constant_png(tmp_path / "wide.png", 9000, 16)  # few pixels, one side too long: facr's side rule
    with pytest.raises(FaceError, match=r"wide\.png: too large \(9000x16; at most 8192 pixels a side\)"):
        read_image(wide)
    assert decodes == []

    small = constant_png(tmp_path / "small.png", 40, 30)  # the recorder does see a decode when there is one
    assert read_image(small).shape == (30, 40, 3) and decodes == [(40, 30)]


TRUNCATED = "cannot be decoded: truncated or corrupt (image file is truncated"


@pytest.mark.parametrize("name, make, problem", [
    ("cut.png", lambda: photo_bytes("PNG")[:6000], TRUNCATED),
    ("cut.jpg", lambda: photo_bytes("JPEG")[:1500], TRUNCATED),
    ("notes.png", lambda: b"these are not pixels\n", "not an image (no picture format PIL can read)"),
    ("empty.png", lambda: b"", "not an image (no picture format PIL can read)"),
])
def test_undecodable_files_get_facrs_one_line(tmp_path, name, make, problem):
    path = tmp_path / name
    path.write_bytes(make())
    for source in (path, path.read_bytes()):  # a file, or the bytes of one
        with pytest.raises(FaceError) as err:
            read_image(source, name="your picture")
        assert str(err.value).startswith(f"your picture: {problem}") and "\n" not in str(err.value)


def test_a_file_over_30_mb_is_refused_before_it_is_opened(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    with big.open("wb") as f:  # sparse: a PNG signature, then nothing written up to 30 MB + 1 byte
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(MAX_BYTES + 1)
    opened = []
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a))
    with pytest.raises(FaceError, match=r"^your picture: too large \(30\.1 MB; at most 30 MB\)$"):
        read_image(big, name="your picture")
    assert opened == []


def test_a_picture_is_read_upright_as_its_exif_orientation_says(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": a phone held upright
    path = tmp_path / "phone.jpg"
    Image.new("RGB", (40, 20), (200, 10, 10)).save(path, exif=exif)
    assert read_image(path).shape == (40, 20, 3)  # 20 wide, 40 high, as a browser shows it


def test_a_refused_upload_is_deleted_with_its_folder_but_nothing_outside_the_cache(tmp_path):
    from facr.chat.ui import _discard

    cache, outside = tmp_path / "cache", tmp_path / "mine.png"
    (cache / "abc123").mkdir(parents=True)
    refused, kept = cache / "abc123" / "notes.png", cache / "abc123" / "other.png"
    for f in (refused, kept, outside):
        f.write_bytes(b"x")
    _discard(str(refused), str(cache))
    assert not refused.exists() and kept.exists()  # its folder stays while another upload lives in it
    _discard(str(kept), str(cache))
    assert not (cache / "abc123").exists() and cache.exists()
    _discard(str(outside), str(cache))
    _discard(str(cache / ".." / "mine.png"), str(cache))
    assert outside.exists()


# ---------------------------------------------------------------- the running app


def unique(tmp_path: Path, name: str, data: bytes) -> Path:
    """``data`` under a name no other upload has (Gradio's cache is shared by every app on this machine)."""
    path = tmp_path / f"{uuid.uuid4().hex[:12]}-{name}"
    path.write_bytes(data)
    return path


@pytest.mark.slow
def test_refused_uploads_get_facrs_line_are_deleted_and_the_next_upload_works(served, astronaut, tmp_path):
    url, _ = served
    client = Client(url, verbose=False)
    refused = [(unique(tmp_path, "notes.png", b"not pixels\n"), "not an image (no picture format PIL can read)"),
               (unique(tmp_path, "cut.png", photo_bytes("PNG")[:6000]), "cannot be decoded: truncated or corrupt")]
    for path, problem in refused:
        seen, *_, status, _, _ = client.predict(handle_file(str(path)), False, api_name="/see")
        assert status.startswith(f"**Error:** facr: your picture: {problem}") and "\n" not in status
        assert seen is None  # no face shown
        assert cached(path.name) == []  # the refused file is gone from Gradio's upload cache at once

    photo = unique(tmp_path, "astronaut.png", astronaut.read_bytes())
    _, label, _, _, status, _, _ = client.predict(handle_file(str(photo)), False, api_name="/see")
    assert status.startswith("**Face:** face found") and label["label"]
    assert len(cached(photo.name)) == 1  # an accepted one stays (for the browser) until the cache sweep


@pytest.mark.slow
def test_a_decompression_bomb_upload_is_refused_without_decoding(served, tmp_path, decodes):
    url, _ = served
    client = Client(url, verbose=False)
    bomb = constant_png(tmp_path / f"{uuid.uuid4().hex[:12]}-bomb.png", 12000, 12000)
    seen, _, _, _, status, _, _ = client.predict(handle_file(str(bomb)), False, api_name="/see")
    assert status.startswith("**Error:** facr: your picture: too large (over 134 million pixels") and seen is None
    assert decodes == [] and cached(bomb.name) == []


@pytest.mark.slow
def test_gradio_refuses_an_upload_over_30_mb_before_it_is_cached(served, tmp_path):
    url, _ = served
    assert Client(url, verbose=False).config["max_file_size"] == MAX_BYTES  # the browser refuses it before sending
    big = tmp_path / f"{uuid.uuid4().hex[:12]}-big.png"
    with big.open("wb") as f:
        f.truncate(MAX_BYTES + 1)
    with big.open("rb") as f:  # what a client that ignores the limit sends: the server stops reading at 30 MB
        response = httpx.post(f"{url}gradio_api/upload", files={"files": (big.name, f, "image/png")}, timeout=60)
    assert response.status_code == 413 and "maximum allowed size" in response.text
    assert cached(big.name) == []


@pytest.mark.slow
def test_stopping_the_app_empties_its_upload_cache(explainer, astronaut, tmp_path):
    from facr.chat.ui import build_app, launch
    from facr.utils import free_port

    app = build_app(explainer)
    port = free_port()
    launch(app, "127.0.0.1", port, block=False)
    try:
        photo = unique(tmp_path, "astronaut.png", astronaut.read_bytes())
        _, label, *_ = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(handle_file(str(photo)), False,
                                                                                  api_name="/see")
        assert label["label"] and len(cached(photo.name)) == 1
    finally:
        app.close()
    assert cached(photo.name) == []  # Blocks(delete_cache=...) removes this app's files when it stops
