import json

import pytest

from facr.errors import GraphFormatError
from facr.graph import dumps_graph, emfacs_graph, load_graph, pspi_graph, resolve_graph, save_graph

GOOD = {
    "format": "facr-graph",
    "version": 1,
    "name": "mini",
    "nodes": [{"id": "AU6", "kind": "au"}, {"id": "AU12", "kind": "au"}, {"id": "AU25", "kind": "au"},
              {"id": "AU26", "kind": "au"}, {"id": "happiness", "kind": "class"}],
    "edges": [
        {"source": "AU6", "target": "happiness", "sign": 1, "weight": 1.0, "provenance": "emfacs"},
        {"source": "AU12", "target": "happiness", "sign": 1, "weight": 0.5, "provenance": "induced-l1",
         "stability": 0.96},
        {"source": "AU26", "target": "AU25", "sign": 1, "weight": 2.0, "provenance": "neighborhood"},
    ],
    "meta": {"source": "test"},
}


def write(tmp_path, doc, name="g.json"):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def mutate(fn):
    doc = json.loads(json.dumps(GOOD))
    fn(doc)
    return doc


def test_round_trip_is_canonical_and_lossless(tmp_path):
    g = load_graph(write(tmp_path, GOOD))
    out = save_graph(g, tmp_path / "out.json")
    text = out.read_text()
    assert text == dumps_graph(g) and text.endswith("\n")
    doc = json.loads(text)
    assert list(doc) == sorted(doc)  # sorted keys
    assert [e["source"] for e in doc["edges"]] == ["AU6", "AU12", "AU26"]
    assert load_graph(out) == g
    assert g.edge("AU12", "happiness").stability == 0.96


def test_shipped_graph_files_equal_the_builtin_tables(repo):
    assert (repo / "graphs" / "emfacs.json").read_text() == dumps_graph(emfacs_graph())
    assert (repo / "graphs" / "pspi.json").read_text() == dumps_graph(pspi_graph())
    assert load_graph(repo / "graphs" / "emfacs.json") == emfacs_graph()


BAD = [
    ("truncated JSON", GOOD and json.dumps(GOOD)[:120], "not valid JSON"),
    ("wrong format", mutate(lambda d: d.update(format="networkx")), "'format' must be 'facr-graph'"),
    ("wrong version", mutate(lambda d: d.update(version=2)), "unsupported version 2"),
    ("unknown AU", mutate(lambda d: d["nodes"].append({"id": "AU99", "kind": "au"})), "unknown AU 'AU99'"),
    ("non-canonical AU", mutate(lambda d: d["nodes"].append({"id": "AU04", "kind": "au"})), "write 'AU4'"),
    ("upper-case class", mutate(lambda d: d["nodes"].append({"id": "Anger", "kind": "class"})), "lowercase"),
    ("duplicate id", mutate(lambda d: d["nodes"].append({"id": "AU6", "kind": "au"})), "duplicate node id 'AU6'"),
    ("sign 0", mutate(lambda d: d["edges"][0].update(sign=0)), "sign must be 1 or -1, got 0"),
    ("sign 1.0", mutate(lambda d: d["edges"][0].update(sign=1.0)), "sign must be 1 or -1"),
    ("negative weight", mutate(lambda d: d["edges"][0].update(weight=-1)), "weight must be >= 0"),
    ("NaN weight", json.dumps(GOOD).replace('"weight": 0.5', '"weight": NaN'), "NaN"),
    ("bad provenance", mutate(lambda d: d["edges"][0].update(provenance="gpt")), "provenance must be one of"),
    ("class to AU edge", mutate(lambda d: d["edges"].append(
        {"source": "happiness", "target": "AU6", "sign": 1, "weight": 1, "provenance": "manual"})),
     "edges must start at an AU node"),
    ("cycle", mutate(lambda d: d["edges"].append(
        {"source": "AU25", "target": "AU26", "sign": 1, "weight": 1, "provenance": "manual"})),
     "cycle: AU"),
    ("dangling node", mutate(lambda d: d["edges"].append(
        {"source": "AU6", "target": "anger", "sign": 1, "weight": 1, "provenance": "manual"})),
     "target 'anger' is not a declared node"),
    ("duplicate edge", mutate(lambda d: d["edges"].append(dict(d["edges"][0]))), "duplicate edge"),
    ("missing key", mutate(lambda d: d["edges"][0].pop("provenance")), "missing 'provenance'"),
    ("unknown key", mutate(lambda d: d["edges"][0].update(sgn=1)), "unknown key(s): sgn"),
    ("not an object", "[1, 2]", "top level must be a JSON object"),
]


@pytest.mark.parametrize("label, doc, message", BAD, ids=[b[0] for b in BAD])
def test_bad_files_raise_one_error_naming_the_file_and_the_problem(tmp_path, label, doc, message):
    path = write(tmp_path, doc)
    with pytest.raises(GraphFormatError) as exc:
        load_graph(path)
    text = str(exc.value)
    assert text.startswith(f"{path}: ")
    assert message in text
    assert "\n" not in text


def test_missing_file_and_directory_are_clear_errors(tmp_path):
    with pytest.raises(GraphFormatError, match="no such file"):
        load_graph(tmp_path / "nope.json")
    with pytest.raises(GraphFormatError, match="is a directory"):
        load_graph(tmp_path)


def test_resolve_graph_reads_files_and_builtin_names(tmp_path):
    assert resolve_graph("emfacs") == emfacs_graph()
    assert resolve_graph(write(tmp_path, GOOD)).name == "mini"
    with pytest.raises(GraphFormatError, match=r"no such file \(or a name: emfacs, pspi\)"):
        resolve_graph("emfac")
    with pytest.raises(GraphFormatError, match=r"\(or a name: emfacs, pspi, truth, induced\)"):
        resolve_graph("emfac", also=("truth", "induced"))


def test_failed_write_leaves_the_old_file_untouched(tmp_path):
    path = save_graph(pspi_graph(), tmp_path / "g.json")
    before = path.read_text()
    g = emfacs_graph()
    g.meta["bad"] = float("nan")
    with pytest.raises(GraphFormatError, match="meta.bad"):
        save_graph(g, path)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json"]
