"""The generations file (read, write, join keys) and the emotion reader of free-text answers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facr.data.records import EMOTIONS, FaceRecord
from facr.errors import FacrError
from facr.external.generations import (
    extract_emotion,
    normalise_key,
    parse_au_label,
    read_generations,
    record_key,
    write_generations,
)


def _write(path, *lines):
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


def test_read_generations_parses_labels_in_every_spelling(tmp_path):
    f = _write(tmp_path / "g.jsonl",
               {"image": "a.png", "output": "AU4", "emotion": "Happy", "aus": "4, 9, 15", "source": "x"},
               "",
               {"image": "b.png", "output": "none", "emotion": 3, "aus": ["AU04_r", "lip corner puller"]},
               {"image": "c.png", "emotion_output": "sad"})
    g = read_generations(f)
    assert [x.line for x in g] == [1, 3, 4]  # blank lines skipped, numbering kept
    assert g[0].emotion == "happiness" and g[0].aus == ["AU4", "AU9", "AU15"] and g[0].extra == {"source": "x"}
    assert g[1].emotion == "anger"  # EmoLA's integer 3
    assert g[1].aus == ["AU4", "AU12"]
    assert g[2].output is None and g[2].emotion_output == "sad" and not g[2].labelled
    assert parse_au_label("", "w") == []


@pytest.mark.parametrize("line, problem", [
    ("not json", "not a JSON object"),
    ('["a"]', "expected a JSON object"),
    ('{"output": "AU4"}', "missing \"image\""),
    ('{"image": "a.png"}', "no \"output\""),
    ('{"image": "a.png", "output": 3}', "'output' must be a string"),
    ('{"image": "a.png", "output": "x", "emotion": "bored"}', "not an emotion facr knows"),
    ('{"image": "a.png", "output": "x", "emotion": 9}', "EmoLA's integer labels"),
    ('{"image": "a.png", "output": "x", "aus": "AU4, AU99"}', "AU99"),
])
def test_a_bad_line_is_one_error_naming_file_and_line(tmp_path, line, problem):
    f = _write(tmp_path / "g.jsonl", {"image": "ok.png", "output": "AU4"}, line)
    with pytest.raises(FacrError) as exc:
        read_generations(f)
    assert str(exc.value).startswith(f"{f}:2: ") and problem in str(exc.value)


def test_empty_or_missing_file_is_an_error(tmp_path):
    with pytest.raises(FacrError, match="no such generations file"):
        read_generations(tmp_path / "none.jsonl")
    with pytest.raises(FacrError, match="empty"):
        read_generations(_write(tmp_path / "e.jsonl", ""))


def test_write_generations_round_trips_and_leaves_nothing_half_written(tmp_path):
    out = tmp_path / "g.jsonl"
    rows = [{"image": "test/00001.png", "output": "AU 12 (Lip Corner Puller) — “smile”", "emotion": "happiness"}]
    assert write_generations(out, rows) == 1
    assert read_generations(out)[0].output == rows[0]["output"]

    def broken():
        yield {"image": "x", "output": "y"}
        raise RuntimeError("generation failed")

    with pytest.raises(RuntimeError):
        write_generations(out, broken())
    assert read_generations(out)[0].image == "test/00001.png"  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["g.jsonl"]  # no temp file left


def test_record_keys_of_synth_and_file_datasets(tmp_path):
    synth = FaceRecord(image=None, dataset="synth", subject="s1", split="test", meta={"index": 12})
    assert record_key(synth, tmp_path) == "test/00012.png"
    img = tmp_path / "images" / "a" / "x.jpg"
    rec = FaceRecord(image=str(img), dataset="faba", subject="x")
    assert record_key(rec, tmp_path) == "images/a/x.jpg"
    assert record_key(rec, tmp_path / "elsewhere") == img.as_posix()
    # the forms a generations line may use all normalise to the record key
    assert normalise_key(str(img), tmp_path) == "images/a/x.jpg"
    assert normalise_key("images\\a\\x.jpg", tmp_path) == "images/a/x.jpg"
    assert normalise_key("./images/a/x.jpg", tmp_path) == "images/a/x.jpg"


@pytest.mark.parametrize("text, expected", [
    ("The emotion conveyed by this face is happiness.", "happiness"),
    ("The person looks Surprised, perhaps even shocked", "surprise"),
    ("This face is not sad; it is angry.", "anger"),
    ("There is no sign of fear here. Mostly disgust", "disgust"),
    ("The nose wrinkles: disgust", "disgust"),  # "no" inside "nose" negates nothing (EmoLA's reader bug)
    ("I know it is joyful", "happiness"),
    ("The face isn't happy", None),
    ("Neutral", "neutral"),
    ("", None),
    (None, None),
])
def test_extract_emotion_reads_the_first_unnegated_emotion(text, expected):
    assert extract_emotion(text) == expected


def test_extract_emotion_keeps_to_the_allowed_classes():
    assert extract_emotion("happy or maybe contemptuous", ["contempt", "anger"]) == "contempt"
    assert extract_emotion("grimacing in pain", ["pain", "no_pain"]) == "pain"


_filler = st.lists(st.sampled_from(["the", "face", "shows", "a", "clear", "mouth", "eyes", "wide", "nose",
                                    "brows", "and", "it", "with", "AU4", "lowered"]), max_size=8)


@settings(max_examples=150, deadline=None)
@given(_filler, st.sampled_from(EMOTIONS), _filler)
def test_an_emotion_word_in_any_filler_is_found(before, emotion, after):
    text = " ".join([*before, emotion.capitalize(), *after])
    assert extract_emotion(text) == emotion


@settings(max_examples=150, deadline=None)
@given(_filler, st.sampled_from(EMOTIONS), st.sampled_from(["not", "no", "never", "isn't", "without"]))
def test_a_negated_emotion_is_never_the_answer(before, emotion, negation):
    assert extract_emotion(" ".join([*before, negation, emotion])) is None
