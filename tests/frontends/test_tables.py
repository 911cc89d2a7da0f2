"""AU tables from OpenFace 2.2, OpenFace 3.0, py-feat and LibreFace: hand-written in each tool's layout,
read into FaceReadings (z by each tool's documented scale, ids kept), and bad tables refused in one line."""

from __future__ import annotations

import numpy as np
import pytest

from facr.errors import DataFormatError
from facr.frontends.tables import FORMATS, detect_format, intensity_to_z, probability_to_z, read_au_table


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# OpenFace 2.2 writes ", " between columns; AU28 has a presence column only; frame 2 lost the face
OPENFACE = """frame, face_id, timestamp, confidence, success, AU01_r, AU06_r, AU12_r, AU01_c, AU06_c, AU12_c, AU28_c
1, 0, 0.000, 0.98, 1, 0.00, 2.50, 3.10, 0, 1, 1, 0
2, 0, 0.033, 0.10, 0, 0.00, 0.00, 0.00, 0, 0, 0, 0
3, 0, 0.067, 0.97, 1, 1.20, 0.40, 0.00, 1, 0, 0, 1
3, 1, 0.067, 0.91, 1, 0.00, 0.00, 5.00, 0, 0, 1, 0
"""


def test_openface_rows_are_faces_with_z_from_presence_and_intensity(tmp_path):
    table = read_au_table(write(tmp_path, "of.csv", OPENFACE))
    assert table.format == "openface" and table.skipped == 1 and len(table) == 3
    assert table.table_aus == ["AU1", "AU6", "AU12", "AU28"]
    first, second, third = table
    # present: 0.55 + 0.09 r; absent: 0.09 r; presence without intensity (AU28_c): r = 2.5
    np.testing.assert_allclose(first.z, [0.0, 0.55 + 0.09 * 2.5, 0.55 + 0.09 * 3.1, 0.0], atol=1e-6)
    np.testing.assert_allclose(second.z, [0.55 + 0.09 * 1.2, 0.09 * 0.4, 0.0, 0.775], atol=1e-6)
    assert [(r.frame, r.face_id) for r in table] == [(1, 0), (3, 0), (3, 1)]
    assert third.z[2] == pytest.approx(1.0)
    assert first.extra["confidence"] == "0.98" and first.extra["AU12_r"] == "3.10"  # names stripped, raw text
    assert first.source == str(tmp_path / "of.csv") and first.box is None


def test_openface_presence_decides_the_side_of_half_even_against_the_intensity(tmp_path):
    """AU01_c = 0 with AU01_r = 4.9 stays below 0.5: the classifier says absent."""
    path = write(tmp_path, "of.csv", "frame, success, AU01_r, AU01_c\n1, 1, 4.90, 0\n2, 1, 0.00, 1\n")
    low, high = (float(r.z[0]) for r in read_au_table(path))
    assert low == pytest.approx(0.441) and high == pytest.approx(0.55)


def test_a_given_au_order_marks_the_aus_a_table_lacks_not_coded(tmp_path):
    table = read_au_table(write(tmp_path, "of.csv", OPENFACE), aus=["AU12", "AU04", "Cheek Raiser"])
    r = table[0]
    assert r.aus == ["AU12", "AU4", "AU6"]
    assert r.coded.tolist() == [True, False, True] and r.z[1] == 0.0
    assert r.seen == ["AU12", "AU6"]


def test_openface_landmarks_give_the_68_points_and_the_box(tmp_path):
    xs = [f"x_{k}" for k in range(68)]
    ys = [f"y_{k}" for k in range(68)]
    header = ", ".join(["frame", "face_id", "success", *xs, *ys, "AU12_r", "AU12_c"])
    row = ", ".join(["1", "0", "1", *(str(100 + k) for k in range(68)), *(str(50 + 2 * k) for k in range(68)),
                     "2.0", "1"])
    r = read_au_table(write(tmp_path, "lm.csv", header + "\n" + row + "\n"))[0]
    assert r.landmarks.shape == (68, 2) and r.landmarks[5].tolist() == [105.0, 60.0]
    assert r.box == (100.0, 50.0, 167.0, 184.0)


# OpenFace 3.0: pandas' CSV, the 8 AU scores as one nested-list cell; a frame without a face is an empty row
OPENFACE3 = """timestamp,video_path,frame_index,face_id,face_detection,landmarks,emotion,gaze_yaw,gaze_pitch,action_units
2025-06-01 10:00:00,clip.mp4,0,0,"[10.0, 20.0, 110.0, 140.0, 0.99]","[[12.0, 30.0], [14.0, 31.0]]",1,0.1,-0.2,"[[0.9, 0.1, 0.05, 0.8, -0.02, 0.95, 0.3, 0.6]]"
2025-06-01 10:00:00,clip.mp4,1,,,,,,,
"""  # noqa: E501  the rows as OpenFace 3.0 writes them, unwrapped


def test_openface3_action_units_cell_is_read_in_disfa_order_as_probabilities(tmp_path):
    table = read_au_table(write(tmp_path, "face_analysis_clip.csv", OPENFACE3))
    assert table.format == "openface3" and table.skipped == 1 and len(table) == 1
    r = table[0]
    assert r.aus == ["AU1", "AU2", "AU4", "AU6", "AU9", "AU12", "AU25", "AU26"]
    np.testing.assert_allclose(r.z, [0.9, 0.1, 0.05, 0.8, 0.0, 0.95, 0.3, 0.6], atol=1e-6)  # -0.02 clipped to 0
    assert r.box == (10.0, 20.0, 110.0, 140.0) and r.landmarks.shape == (2, 2)
    assert (r.frame, r.face_id) == (0, 0) and r.extra["emotion"] == "1"


# py-feat's Fex CSV: two faces in frame 0, a frame without a face (NaN row)
PYFEAT = """frame,FaceRectX,FaceRectY,FaceRectWidth,FaceRectHeight,FaceScore,AU01,AU04,AU06,AU12,anger,happiness,input
0,10,20,100,120,0.99,0.10,0.70,0.85,0.92,0.01,0.95,group.jpg
0,300,40,90,100,0.98,0.55,0.20,0.05,0.00,0.60,0.02,group.jpg
1,,,,,,,,,,,,group.jpg
"""


def test_pyfeat_probabilities_are_z_and_faces_of_a_frame_are_numbered(tmp_path):
    table = read_au_table(write(tmp_path, "fex.csv", PYFEAT))
    assert table.format == "pyfeat" and table.skipped == 1
    a, b = table
    assert a.aus == ["AU1", "AU4", "AU6", "AU12"]
    np.testing.assert_allclose(a.z, [0.10, 0.70, 0.85, 0.92], atol=1e-6)
    assert a.box == (10.0, 20.0, 110.0, 140.0) and b.box == (300.0, 40.0, 390.0, 140.0)
    assert [(r.frame, r.face_id) for r in table] == [(0, 0), (0, 1)]



def test_a_facr_results_table_keeps_its_tracked_face_ids(tmp_path):
    # facr explain writes py-feat's columns with its tracker's face_id: face 1 alone in frame 4 stays face 1
    text = ("input,frame,timestamp,face_id,FaceRectX,FaceRectY,FaceRectWidth,FaceRectHeight,AU06,AU12\n"
            "v.mp4,3,0.1,0,10,20,100,120,0.2,0.9\nv.mp4,3,0.1,1,300,20,100,120,0.8,0.1\n"
            "v.mp4,4,0.13,1,302,21,100,120,0.7,0.2\n")
    table = read_au_table(write(tmp_path, "results.csv", text))
    assert table.format == "pyfeat"
    assert [(r.frame, r.face_id) for r in table] == [(3, 0), (3, 1), (4, 1)]

# LibreFace: au_n (BP4D detection 0/1) and au_n_intensity (DISFA intensity 0-5); AU7 detection only,
# AU5 and AU9 intensity only
LIBREFACE = """frame_idx,frame_time_in_ms,pitch,yaw,roll,au_1,au_7,au_12,au_1_intensity,au_5_intensity,au_9_intensity,au_12_intensity,facial_expression
0,0.0,1.0,2.0,3.0,1,1,0,0.5,3.0,0.4,1.8,Happiness
"""  # noqa: E501  the header as LibreFace writes it, unwrapped


def test_libreface_combines_detection_and_intensity_and_reads_each_alone(tmp_path):
    table = read_au_table(write(tmp_path, "libre.csv", LIBREFACE))
    assert table.format == "libreface"
    r = table[0]
    assert r.aus == ["AU1", "AU5", "AU7", "AU9", "AU12"]
    expected = [0.55 + 0.09 * 0.5,  # detected, intensity 0.5
                0.55 + 0.09 * 3.0,  # intensity alone >= 1: present
                0.775,  # detection alone: r = 2.5
                0.09 * 0.4,  # intensity alone < 1: absent
                0.09 * 1.8]  # not detected: absent, whatever the intensity
    np.testing.assert_allclose(r.z, expected, atol=1e-6)
    assert r.frame == 0 and r.face_id == 0 and r.extra["facial_expression"] == "Happiness"


@pytest.mark.parametrize("text, fmt", [(OPENFACE, "openface"), (OPENFACE3, "openface3"), (PYFEAT, "pyfeat"),
                                       (LIBREFACE, "libreface")])
def test_the_format_is_recognised_from_the_header(text, fmt):
    header = [h.strip() for h in text.splitlines()[0].split(",")]
    assert detect_format(header) == fmt
    assert set(FORMATS) == {"openface", "openface3", "pyfeat", "libreface"}


def test_the_z_rules_keep_presence_on_its_side_of_half():
    r = np.linspace(0, 5, 51)
    present, absent = intensity_to_z(r, np.ones_like(r)), intensity_to_z(r, np.zeros_like(r))
    assert present.min() >= 0.55 and absent.max() <= 0.45 + 1e-6
    assert np.all(np.diff(present) > 0) and np.all(np.diff(absent) > 0)
    assert intensity_to_z([0.99, 1.0]).tolist() == pytest.approx([0.0891, 0.64])
    assert probability_to_z([-0.3, 0.4, 1.2]).tolist() == pytest.approx([0.0, 0.4, 1.0])


BAD = [
    ("binary.csv", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not a CSV table"),
    ("empty.csv", b"", "empty file"),
    ("noau.csv", b"frame,score\n1,0.5\n", "no AU column among the columns (frame, score)"),
    ("unknown.csv", b"AU4,AU12,label\n1,0,happy\n", "cannot tell which tool wrote it"),
    ("notfacs.csv", b"frame, success, AU03_r, AU03_c\n1, 1, 1.0, 1\n", "column 'AU03_r': not a FACS main action unit"),
    ("text.csv", b"frame, success, AU04_r, AU04_c\n1, 1, high, 1\n", "line 2, column 'AU04_r': not a number: 'high'"),
    ("nan.csv", b"frame, success, AU04_r, AU12_r\n1, 1, 1.0, 2.0\n2, 1, nan, 2.0\n",
     "line 3, column 'AU04_r': empty or NaN in a face's row"),
    ("scale.csv", b"frame, success, AU04_r\n1, 1, 7.5\n",
     "line 2, column 'AU04_r': 7.5 is off the 0-5 intensity scale"),
    ("presence.csv", b"frame, success, AU04_c\n1, 1, 0.4\n", "line 2, column 'AU04_c': presence must be 0 or 1"),
    ("short.csv", b"frame, success, AU04_r\n1, 1\n", "line 2: 2 fields, the header has 3"),
    ("of3.csv", b'face_id,action_units\n0,"[[0.1, 0.2]]"\n',
     "line 2, column 'action_units': 2 values, OpenFace 3.0 writes 8"),
    ("pyfeat.csv", b"frame,FaceScore,AU04\n0,0.9,3.0\n", "line 2, column 'AU04': 3 is off the AU probability scale"),
]


@pytest.mark.parametrize("name, content, problem", BAD, ids=[b[0] for b in BAD])
def test_a_bad_table_is_one_line_naming_the_file_and_the_place(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataFormatError) as info:
        read_au_table(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and problem in message and "\n" not in message


def test_a_named_format_that_the_header_does_not_fit_is_refused(tmp_path):
    path = write(tmp_path, "of.csv", OPENFACE)
    with pytest.raises(DataFormatError, match=r"no libreface AU column \(au_n / au_n_intensity\) among the columns: "
                                              r"frame, face_id"):
        read_au_table(path, "libreface")
    with pytest.raises(DataFormatError, match="unknown table format 'csv'"):
        read_au_table(path, "csv")
    with pytest.raises(DataFormatError, match="no such file"):
        read_au_table(tmp_path / "missing.csv")
