import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facr import au
from facr.errors import UnknownAUError

MAIN = [1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 22, 23, 24, 25, 26, 27, 28,
        41, 42, 43, 44, 45, 46]


def test_vocabulary_holds_every_facs_main_au_with_name_and_region():
    assert list(au.MAIN_AUS) == MAIN
    for n in MAIN:
        info = au.AUS[n]
        assert info.id == f"AU{n}"
        assert info.name and info.name[0].isupper()
        assert info.region in au.REGIONS
    assert au.AUS[12].name == "Lip Corner Puller" and au.AUS[12].region == "mouth"
    assert au.AUS[43].name == "Eyes Closed" and au.AUS[43].region == "eyes"
    assert au.AUS[4].region == "brows"


@pytest.mark.parametrize(
    "text, number",
    [
        ("AU4", 4), ("AU04", 4), ("au 4", 4), ("AU04_r", 4), ("AU04_c", 4), ("AU12 (Lip Corner Puller)", 12),
        ("Lip Corner Puller", 12), ("1. AU4 - Brow Lowerer", 4), ("AU 12", 12), ("AU-26", 26), ("au_06", 6),
        ("the cheek raiser", 6), ("Cheek Raisers", 6), ("eye closure", 43), ("Lips Apart", 25), ("12", 12),
        ("Cheek Puffer", 13), ("AU6 - Cheek Raiser", 6), (" AU45 ", 45), (17, 17), (np.int64(9), 9),
    ],
)
def test_parse_accepts_every_common_spelling(text, number):
    assert au.parse(text) == number
    assert au.canonical(text) == f"AU{number}"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("AU99", "AU99"), ("AU3", "AU3"), ("smile", "smile"), ("", "''"), ("AU", "'AU'"),
        ("AU4 and AU12", "several"), ("AU4 (Lip Corner Puller)", "disagree"), ("Lip Corner", "Lip Corner"),
    ],
)
def test_parse_rejects_unknown_text_with_an_error_naming_it(text, fragment):
    with pytest.raises(UnknownAUError) as exc:
        au.parse(text)
    assert fragment in str(exc.value)


def test_parse_rejects_booleans_and_non_strings():
    for bad in (True, None, 4.0, ["AU4"]):
        with pytest.raises(UnknownAUError):
            au.parse(bad)


def _render(number: int, style: int, index: int) -> str:
    name = au.AUS[number].name
    return [
        f"AU{number}", f"AU{number:02d}", f"au {number}", f"AU {number}", f"AU-{number}", f"AU_{number:02d}",
        f"AU{number:02d}_r", f"AU{number:02d}_c", f"AU{number} ({name})", name, name.lower(), name.upper(),
        f"{index}. AU{number} - {name}", f"AU {number} ({name})", f"the {name.lower()}", f"{name} (AU{number})",
    ][style]


STYLES = st.integers(0, 15)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(MAIN), STYLES, st.integers(1, 30))
def test_parse_round_trips_generated_spellings(number, style, index):
    assert au.parse(_render(number, style, index)) == number


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=40))
def test_parse_of_arbitrary_text_returns_a_main_au_or_raises_unknown_au(text):
    try:
        n = au.parse(text)
    except UnknownAUError as exc:
        assert text in str(exc) or repr(text) in str(exc)
    else:
        assert n in au.AUS


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(MAIN), STYLES), min_size=1, max_size=6),
       st.sampled_from([", ", "; ", " and ", "\n", ". Also "]))
def test_extract_finds_each_named_au_once_in_order_of_mention(items, sep):
    text = sep.join(_render(n, s, i + 1) for i, (n, s) in enumerate(items))
    expected = list(dict.fromkeys(n for n, _ in items))
    assert au.extract(text) == expected


def test_extract_reads_emola_style_answers():
    answer = (
        "1. AU4 - Brow Lowerer: the brows are drawn together.\n"
        "2. AU 12 (Lip Corner Puller): the corners of the mouth rise.\n"
        "3. AU06 and the cheek raiser are visible. AU99 is not a unit; AU4 again."
    )
    assert au.extract(answer) == [4, 12, 6]
    assert au.extract("no action units are visible") == []
    # a number beside a disagreeing name: the number wins, the name is not counted
    assert au.extract("AU4 (Lip Corner Puller)") == [4]


def test_pspi_is_au4_plus_max_6_7_plus_max_9_10_plus_au43():
    assert au.pspi({"AU4": 2, "AU6": 1, "AU7": 3, "AU9": 0, "AU10": 1, "AU43": 1}) == 2 + 3 + 1 + 1
    assert au.pspi({"AU04_r": 1.5, "AU06_r": 2.0}) == 3.5  # absent AUs count as 0
    assert au.pspi({"AU12": 5}) == 0.0  # AU12 is not in the composition
    values = au.pspi({"AU4": np.array([0, 1, 2]), "AU9": np.array([3, 0, 1]), "AU10": np.array([1, 2, 4])})
    np.testing.assert_array_equal(values, [3, 3, 6])


def test_pspi_rejects_negative_intensities_and_duplicate_aus():
    with pytest.raises(ValueError, match="AU4"):
        au.pspi({"AU4": -1})
    with pytest.raises(ValueError, match="twice"):
        au.pspi({"AU4": 1, "AU04_r": 2})


def test_sort_aus_deduplicates_and_orders_by_number():
    assert au.sort_aus(["AU12", "au 4", "AU04_r", "Jaw Drop"]) == ["AU4", "AU12", "AU26"]


def test_aus_in_prose_are_named_and_joined_with_and():
    from facr import au as au_vocab

    assert au_vocab.phrase("AU04_r") == "AU4 (brow lowerer)"
    assert au_vocab.listed(["AU12"]) == "AU12 (lip corner puller)"
    assert au_vocab.listed(["AU6", "au 12", "AU4"]) == \
        "AU6 (cheek raiser), AU12 (lip corner puller) and AU4 (brow lowerer)"
