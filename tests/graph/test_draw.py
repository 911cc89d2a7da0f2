import numpy as np
from PIL import Image

from facr.graph import emfacs_graph, graph_from_edges
from facr.graph.draw import EDGE_ALPHA, NEGATIVE, POSITIVE, draw_graph


def _count(img: np.ndarray, hex_color: str, tol: int = 40) -> int:
    # edges are drawn translucent over white
    rgb = EDGE_ALPHA * np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)]) + (1 - EDGE_ALPHA) * 255
    return int((np.abs(img[..., :3].astype(int) - rgb).sum(axis=-1) < tol).sum())


def test_draw_colours_positive_edges_green_and_negative_edges_red(tmp_path):
    g = graph_from_edges("signs", [("AU6", "happiness", 1), ("AU12", "happiness", 1), ("AU15", "happiness", -1, 3.0)])
    path = draw_graph(g, tmp_path / "g.png")
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape[0] > 300 and img.shape[1] > 800
    assert _count(img, POSITIVE) > 500 and _count(img, NEGATIVE) > 500
    only_pos = draw_graph(emfacs_graph(), tmp_path / "emfacs.png")
    assert _count(np.asarray(Image.open(only_pos).convert("RGB")), NEGATIVE) < 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emfacs.png", "g.png"]  # no temp files left


def test_draw_writes_svg_by_suffix(tmp_path):
    path = draw_graph(emfacs_graph(), tmp_path / "g.svg")
    assert path.read_text().lstrip().startswith("<?xml")
