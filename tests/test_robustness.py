"""Hostile input through the ``facr`` entry point: whatever a JSON, YAML, CSV, JSONL or image file holds,
facr answers with exit 0 (the input happened to be valid) or with exit 2 and exactly one line
``facr: ...`` on stderr — never a traceback — and no file outside ``--out`` changes.

Inputs are drawn by hypothesis: arbitrary bytes, arbitrary JSON/YAML values, and valid files with one
part replaced by arbitrary data (the mutations a real user makes by hand). Each command runs in-process
through :func:`facr.cli.main`, so a stray exception fails the test with its traceback.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from facr.cli import main
from facr.data.synth import SynthConfig, write_synth

REPO = Path(__file__).resolve().parents[1]
FUZZ = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(scalars,
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                           max_leaves=12)
# what a broken editor or a wrong download leaves: random bytes, deep nesting, NaN, a BOM, nothing
raw_bytes = st.one_of(
    st.binary(max_size=300),
    st.integers(1, 200_000).map(lambda n: b"[" * n),
    st.integers(1, 200_000).map(lambda n: b'{"a":' * n),
    st.sampled_from([b"", b"\xef\xbb\xbf{}", b"NaN", b'{"edges": NaN}', b"\xff\xfe\x00\x00", b"null"]),
)


def tree_digest(root: Path, skip: Path) -> dict[str, str]:
    """path → sha256 of every file under ``root`` except those under ``skip`` (the command's --out)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and skip not in p.parents and p != skip:
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_guarded(root: Path, out: Path, *argv) -> tuple[int, str]:
    """Run facr; return (code, stderr) after checking the contract: exit 0 or 2, a refusal is one
    ``facr:`` line, and nothing under ``root`` outside ``out`` changed."""
    before = tree_digest(root, out)
    err, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(stdout):
        code = main([str(a) for a in argv])
    text = err.getvalue()
    assert "Traceback" not in text, text
    assert code in (0, 2), (code, text)
    if code == 2:
        lines = [line for line in text.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("facr: "), text
    assert tree_digest(root, out) == before, "a file outside --out changed"
    return code, text


def mutate(doc, path_choice: list[int], value):
    """``doc`` with the node that ``path_choice`` walks to replaced by ``value``."""
    doc = copy.deepcopy(doc)
    node, key = None, None
    cur = doc
    for i in path_choice:
        if isinstance(cur, dict) and cur:
            k = sorted(cur)[i % len(cur)]
        elif isinstance(cur, list) and cur:
            k = i % len(cur)
        else:
            break
        node, key, cur = cur, k, cur[k]
    if node is None:
        return value
    node[key] = value
    return doc


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("robust") / "synth"
    write_synth(root, SynthConfig(n=60, seed=5, subjects=6, size=32), workers=1)
    return root


def _workspace(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A fresh folder with a user's own file in it (which must survive) and an --out path inside it."""
    root = tmp_path / name
    if root.exists():
        shutil.rmtree(root)
    root.mkdir()
    (root / "mine.txt").write_text("the user's notes\n")
    return root, root / "out"


# ----------------------------------------------------------------------------------------- JSON
EMFACS = json.loads((REPO / "graphs" / "emfacs.json").read_text())


@FUZZ
@given(data=st.one_of(raw_bytes, json_values.map(lambda v: json.dumps(v).encode()),
                      st.tuples(st.lists(st.integers(0, 50), max_size=4), json_values)
                      .map(lambda t: json.dumps(mutate(EMFACS, *t)).encode())))
def test_graph_file_of_any_content_is_validated_or_refused_in_one_line(tmp_path, data):
    root, out = _workspace(tmp_path, "json")
    (root / "g.json").write_bytes(data)
    run_guarded(root, out, "graph", "validate", root / "g.json")
    run_guarded(root, out, "graph", "show", root / "g.json")
    run_guarded(root, out, "graph", "permute", root / "g.json", "--seed", "3", "--out", out / "p.json")


# ------------------------------------------------------------------------------------------ CSV
GOOD_CSV = "AU6,AU12,AU4,AU15,label\n" + "".join(
    f"{a},{b},{c},{d},{lab}\n" for a, b, c, d, lab in
    [(1, 1, 0, 0, "happiness"), (0, 0, 1, 1, "sadness"), (1, 1, 0, 1, "happiness"), (0, 0, 1, 0, "sadness")] * 8)


@FUZZ
@given(data=st.one_of(
    raw_bytes,
    st.lists(st.lists(st.text(max_size=6), min_size=1, max_size=6), max_size=8)
    .map(lambda rows: "\n".join(",".join(r) for r in rows).encode("utf-8", "surrogatepass")),
    st.tuples(st.integers(0, 32), st.text(max_size=12))
    .map(lambda t: "\n".join(line if i != t[0] else t[1] for i, line in enumerate(GOOD_CSV.splitlines()))
         .encode("utf-8", "surrogatepass")),
))
def test_induction_table_of_any_content_is_induced_or_refused_in_one_line(tmp_path, data):
    root, out = _workspace(tmp_path, "csv")
    (root / "t.csv").write_bytes(data)
    run_guarded(root, out, "graph", "induce", root / "t.csv", "--out", out / "g.json", "--bootstrap", "2")


# ----------------------------------------------------------------------------------------- YAML
TRAIN_KEYS = ["data", "encoder", "head", "head_hidden", "graph", "faith", "loss", "epsilon", "lr", "batch_size",
              "epochs", "max_steps", "seed", "out", "mixed_precision", "class_weights", "early_stopping"]
yaml_docs = st.one_of(
    raw_bytes,
    st.dictionaries(st.sampled_from(TRAIN_KEYS), json_values, max_size=5).map(lambda d: yaml.safe_dump(d).encode()),
    st.dictionaries(st.sampled_from(["path", "image_size", "task", "limit", "stride", "num_workers"]), json_values,
                    max_size=3).map(lambda d: yaml.safe_dump({"data": d, "epochs": 1}).encode()),
    st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@FUZZ
@given(data=yaml_docs)
def test_training_config_of_any_content_is_refused_in_one_line(tmp_path, data):
    root, out = _workspace(tmp_path, "yaml")
    (root / "c.yaml").write_bytes(data)
    # --data names a folder that does not exist: a config that happens to be valid stops there, in one line
    code, _ = run_guarded(root, out, "train", "reasoner", "--config", root / "c.yaml", "--data", root / "no-data",
                          "--out", out, "--no-progress")
    assert code == 2


# ---------------------------------------------------------------------------------------- JSONL
@FUZZ
@given(lines=st.lists(st.one_of(
    json_values.map(json.dumps),
    st.dictionaries(st.sampled_from(["image", "output", "emotion_output", "label", "id"]),
                    st.text(max_size=30) | json_values, max_size=4).map(json.dumps),
    st.text(max_size=40),
    st.integers(1, 100_000).map(lambda n: "[" * n),
), min_size=1, max_size=5))
def test_generations_file_of_any_content_is_audited_or_refused_in_one_line(tmp_path, synth, lines):
    root, out = _workspace(tmp_path, "jsonl")
    (root / "g.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    before = tree_digest(synth, synth / "nothing")
    run_guarded(root, out, "audit", "--model", "emola", "--generations", root / "g.jsonl", "--data", synth,
                "--graph", "truth", "--out", out, "--no-progress")
    assert tree_digest(synth, synth / "nothing") == before  # the data folder is never written


# --------------------------------------------------------------------------------------- images
def _png_with_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` × ``height`` but whose data is tiny (a decompression bomb's shape)."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
            + chunk(b"IEND", b""))


def _face_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((48, 48, 3)) * 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


FACE = _face_png()
images = st.one_of(
    st.binary(max_size=400),
    st.integers(8, len(FACE) - 1).map(lambda n: FACE[:n]),  # truncated
    st.tuples(st.integers(1, 200_000), st.integers(1, 200_000)).map(lambda wh: _png_with_header(*wh)),
    st.tuples(st.integers(0, len(FACE) - 1), st.binary(min_size=1, max_size=8))
    .map(lambda t: FACE[:t[0]] + t[1] + FACE[t[0] + len(t[1]):]),  # corrupted bytes
    st.just(FACE),
)


@FUZZ
@given(data=images)
def test_image_of_any_content_is_read_or_refused_in_one_line(tmp_path, reasoner, data):
    _, run = reasoner
    root, out = _workspace(tmp_path, "img")
    (root / "face.png").write_bytes(data)
    run_guarded(root, out, "explain", "maps", "--model", run, "--image", root / "face.png", "--crop",
                "--out", out / "overlay.png")


def test_box_overlap_is_iou_and_the_share_of_the_smaller_box():
    from facr.utils import box_overlap

    assert box_overlap((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx((1 / 7, 1 / 4))
    assert box_overlap((0, 0, 4, 4, 0.9), (1, 1, 2, 2)) == pytest.approx((1 / 16, 1.0))  # a score is ignored
    assert box_overlap((0, 0, 1, 1), (2, 2, 3, 3)) == (0.0, 0.0)


def test_a_benchmark_script_refuses_in_one_line_and_exit_2(capsys, monkeypatch):
    from benchmarks._common import run
    from facr.errors import FacrError

    def refused():
        raise FacrError("/no/such/data", "no such folder")

    monkeypatch.setattr(sys, "argv", ["benchmarks/bench_pixel_audit.py"])
    assert run(refused) == 2 and run(lambda: 1) == 1
    assert capsys.readouterr().err == "bench_pixel_audit: /no/such/data: no such folder\n"
