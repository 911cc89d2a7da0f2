"""Leave-one-subject-out folds, subject-disjoint splits and temporal striding."""

from pathlib import Path

import numpy as np
import pytest

from facr.data.formats import load
from facr.data.records import FaceRecord
from facr.data.splits import loso, stride, subject_split

UNBC = Path(__file__).resolve().parent / "fixtures" / "unbc"


def frames(subject, n, video=None, pspi=None, emotion=None, order=None):
    order = order or range(1, n + 1)
    return [FaceRecord(image=None, dataset="t", subject=subject, video=video or f"{subject}-v", frame=f,
                       pspi=pspi, emotion=emotion) for f in order]


def test_loso_holds_out_each_subject_and_flags_a_subject_without_pain():
    records = load("unbc", UNBC).records
    folds = list(loso(records))
    assert [f.subject for f in folds] == ["042-ll042", "101-mg101"]
    pained, painless = folds
    assert pained.classes == (0, 1) and not pained.single_class and pained.has_positive is True
    # like the paper's subject 101: no PSPI > 0 frame, so F1/AUC are undefined on this fold
    assert painless.classes == (0,) and painless.single_class and painless.has_positive is False
    assert len(painless.test) == 2 and len(painless.train) == 4
    for fold in folds:
        assert {records[i].subject for i in fold.test} == {fold.subject}
        assert fold.subject not in {records[i].subject for i in fold.train}
        assert sorted(np.concatenate([fold.train, fold.test]).tolist()) == list(range(len(records)))


def test_loso_on_emotions_flags_single_class_and_leaves_has_positive_undefined():
    records = frames("a", 2, emotion="happiness") + frames("b", 1, emotion="anger") + frames("b", 1, emotion="fear")
    folds = {f.subject: f for f in loso(records)}
    assert folds["a"].single_class and folds["a"].has_positive is None
    assert folds["b"].classes == ("anger", "fear") and not folds["b"].single_class
    custom = {f.subject: f for f in loso(records, label=lambda r: int(r.emotion == "fear"))}
    assert custom["b"].has_positive is True and custom["a"].has_positive is False


def test_loso_needs_two_subjects():
    with pytest.raises(ValueError, match="at least 2 subjects"):
        list(loso(frames("only", 3)))


def test_subject_split_is_subject_disjoint_seeded_and_sized_by_fraction():
    records = [r for s in range(20) for r in frames(f"s{s:02d}", 3)]
    split = subject_split(records, seed=7)
    assert [len(split.subjects[p]) for p in ("train", "val", "test")] == [14, 3, 3]
    assert [len(split[p]) for p in ("train", "val", "test")] == [42, 9, 9]
    parts = [{records[i].subject for i in split[p]} for p in ("train", "val", "test")]
    assert parts[0].isdisjoint(parts[1]) and parts[0].isdisjoint(parts[2]) and parts[1].isdisjoint(parts[2])
    assert sorted(np.concatenate([split.train, split.val, split.test]).tolist()) == list(range(60))
    again = subject_split(records, seed=7)
    assert again.subjects == split.subjects and np.array_equal(again.test, split.test)
    assert subject_split(records, seed=8).subjects != split.subjects
    assert split.to_dict()["test"] == list(split.subjects["test"])


def test_subject_split_gives_each_nonzero_part_a_subject_and_checks_fractions():
    three = [r for s in "abc" for r in frames(s, 2)]
    assert [len(v) for v in subject_split(three).subjects.values()] == [1, 1, 1]
    no_val = subject_split(three, fractions=(0.8, 0.0, 0.2))
    assert len(no_val.val) == 0 and len(no_val.subjects["test"]) == 1 and len(no_val.subjects["train"]) == 2
    with pytest.raises(ValueError, match="need at least 3 subjects"):
        subject_split(three[:4])
    with pytest.raises(ValueError, match="sum to 1"):
        subject_split(three, fractions=(0.5, 0.2, 0.2))
    with pytest.raises(ValueError, match="three numbers"):
        subject_split(three, fractions=(0.5, 0.5))


def test_stride_keeps_every_kth_frame_of_each_video_in_frame_order():
    shuffled = [7, 3, 10, 1, 5, 2, 9, 4, 8, 6]
    records = frames("a", 10, order=shuffled) + frames("b", 3)
    kept = stride(records, 4)
    # frames 1, 5, 9 of a and 1 of b, returned as ascending list indices
    assert kept.tolist() == [3, 4, 6, 10]
    assert [(records[i].subject, records[i].frame) for i in kept] == [("a", 1), ("a", 5), ("a", 9), ("b", 1)]
    assert sorted(records[i].frame for i in stride(records, 4, offset=1) if records[i].subject == "a") == [2, 6, 10]
    assert stride(records, 1).tolist() == list(range(13))
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="k must be"):
            stride(records, bad)
    with pytest.raises(ValueError, match="offset"):
        stride(records, 4, offset=4)


def test_stride_separates_videos_of_one_subject():
    records = frames("a", 5, video="t1") + frames("a", 5, video="t2")
    assert len(stride(records, 4)) == 4  # frames 1 and 5 of each video
