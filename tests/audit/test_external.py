"""`facr audit --model emola` (generations) and `--model frozen-llm` (simulatability), the stand-in
generations file, `facr llm serve` on loopback, and other reasoners as experiment arms."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from facr.data.formats import load as load_format
from facr.data.synth import SynthConfig, write_synth
from facr.external.generations import record_key
from facr.graph import load_graph, resolve_graph

EMOLA_CONTRACT = ("n_samples", "n_no_au_named", "aus_per_frame", "active_au_precision", "active_au_recall",
                  "graph_causal_agreement", "graph_causal_agreement_label", "graph_causal_agreement_signed",
                  "graph_causal_agreement_label_signed", "pspi_agreement", "pspi_agreement_signed", "per_class",
                  "emotion_accuracy", "per_subject", "ci95")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("external") / "synth"
    write_synth(root, SynthConfig(n=72, seed=4, subjects=6, size=32), workers=1)
    return root


@pytest.fixture(scope="module")
def test_records(data):
    return [r for r in load_format("synth", data, decode=False).records if r.split == "test"]


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------ emola, from generations
def test_emola_audit_matches_a_hand_count(data, test_records, tmp_path, run_cli):
    graph = load_graph(data / "graph.json")
    usable = [r for r in test_records if r.active_aus() and r.emotion in graph.classes and graph.parents(r.emotion)]
    assert len(usable) >= 3  # the seeded fixture has them
    r0, r1, r2 = usable[:3]
    a0 = r0.active_aus()
    inactive = next(a for a in r2.au_presence if r2.au_presence[a] == 0)
    active2 = r2.active_aus()[0]
    gen = _jsonl(tmp_path / "g.jsonl", [
        # names exactly the labelled AUs, in EmoLA's list style
        {"image": record_key(r0, data), "output": "\n".join(f"{i}. {a} - x" for i, a in enumerate(a0, 1)),
         "emotion_output": f"The face shows {r0.emotion}."},
        # names nothing
        {"image": record_key(r1, data), "output": "I cannot tell.", "emotion_output": "It is unclear."},
        # one active and one inactive AU, with the numbers spelled two ways
        {"image": str(data.resolve() / record_key(r2, data)),
         "output": f"AU 0{active2[2:]} and {inactive.replace('AU', 'AU0')}"},
        # not a record of the data and no labels: left out, counted
        {"image": "elsewhere/x.png", "output": "AU4"},
    ])
    code, out, err = run_cli("audit", "--model", "emola", "--generations", gen, "--data", data, "--graph", "truth",
                             "--json")
    assert code == 0, err
    m = json.loads(out)
    for key in EMOLA_CONTRACT:
        assert key in m, key
    assert m["n_samples"] == 3 and m["n_lines"] == 4 and m["n_unmatched_lines"] == 1
    assert m["n_no_au_named"] == 1
    assert m["aus_per_frame"] == pytest.approx((len(a0) + 0 + 2) / 3)
    assert m["active_au_precision"] == pytest.approx((1.0 + 0.5) / 2)  # undefined where nothing is named
    assert m["active_au_recall"] == pytest.approx((1.0 + 0.0 + 1 / len(r2.active_aus())) / 3)
    pa = {r.emotion: set(graph.parents(r.emotion)) for r in (r0, r1, r2)}
    expect = [len(set(a0) & pa[r0.emotion]) / len(pa[r0.emotion]), 0.0,
              len({active2, inactive} & pa[r2.emotion]) / len(pa[r2.emotion])]
    # against the label's parents: every line; against the stated emotion's: only line 0 states one
    assert m["graph_causal_agreement_label"] == pytest.approx(sum(expect) / 3)
    assert m["graph_causal_agreement"] == pytest.approx(expect[0])
    # no do() to read a sign from: undefined, with the reason
    assert m["graph_causal_agreement_signed"] is None and m["graph_causal_agreement_label_signed"] is None
    assert "no latent to intervene on" in m["signed_agreement_note"]
    # the emotion question was answered on two lines; the one that says "unclear" counts as wrong
    assert m["emotion_accuracy"] == pytest.approx(0.5) and m["emotion_answered_rate"] == pytest.approx(0.5)
    # no intervention handle: said, not invented
    assert m["cf_sensitivity"] is None and m["cf_invariance"] is None and "no handle" in m["intervention_note"]
    assert sum(row["n_samples"] for row in m["per_class"].values()) == 3
    assert sum(row["n_samples"] for row in m["per_subject"].values()) == 3


def test_emola_audit_writes_a_report_and_prints_a_table(data, test_records, tmp_path, run_cli):
    gen = _jsonl(tmp_path / "g.jsonl", [{"image": record_key(r, data), "output": "AU12 and the brow lowerer"}
                                        for r in test_records[:4]])
    code, out, err = run_cli("audit", "--model", "emola", "--generations", gen, "--data", data,
                             "--out", tmp_path / "rep")
    assert code == 0, err
    assert "AUs named per frame" in out and "2.000" in out and "counterfactual figures: none" in out
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "No intervention figures" in report and "| AUs named per frame | 2.000 |" in report
    assert json.loads((tmp_path / "rep" / "metrics.json").read_text())["n_samples"] == 4


def test_emola_audit_errors_are_one_line(data, tmp_path, run_cli):
    code, _, err = run_cli("audit", "--model", "emola", "--data", data)
    assert code == 2 and "--generations FILE.jsonl is required" in err
    gen = _jsonl(tmp_path / "g.jsonl", [{"image": "test/00000.png", "output": "AU4"}])
    code, _, err = run_cli("audit", "--model", "emola", "--generations", gen)
    assert code == 2 and f"{gen}:1: this line has no labels" in err and "--data" in err
    gen = _jsonl(tmp_path / "h.jsonl", [{"image": "nowhere/x.png", "output": "AU4"}])
    code, _, err = run_cli("audit", "--model", "emola", "--generations", gen, "--data", data)
    assert code == 2 and "no line's image matches" in err and "test/" in err
    assert err.count("\n") == 1


def test_standin_is_reproducible_and_labelled_not_emola(data, tmp_path, run_cli):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for out in (a, b):
        code, _, err = run_cli("emola", "stand-in", "--data", data, "--split", "all", "--out", out, "--seed", "3")
        assert code == 0, err
    assert a.read_bytes() == b.read_bytes()
    lines = [json.loads(x) for x in a.read_text().splitlines()]
    assert len(lines) == 72 and all("NOT EmoLA" in x["source"] for x in lines)


def test_standin_audit_recovers_its_construction(data, tmp_path, run_cli):
    """A describer that always states the label and names exactly its EMFACS prototype scores
    emotion accuracy 1 and graph-causal agreement 1 against EMFACS: the parser reads every spelling
    the stand-in writes."""
    gen = tmp_path / "s.jsonl"
    code, _, err = run_cli("emola", "stand-in", "--data", data, "--split", "all", "--out", gen, "--p-correct", "1",
                           "--p-prototype", "1", "--p-seen", "0")
    assert code == 0, err
    code, out, err = run_cli("audit", "--model", "emola", "--generations", gen, "--graph", "emfacs", "--json")
    assert code == 0, err
    m = json.loads(out)
    emfacs = resolve_graph("emfacs")
    assert m["emotion_accuracy"] == 1.0
    assert m["graph_causal_agreement"] == 1.0
    with_parents = [c for c, row in m["per_class"].items() if c in emfacs.classes and emfacs.parents(c)]
    assert with_parents and all(m["per_class"][c]["graph_causal_agreement"] == 1.0 for c in with_parents)
    # neutral has no prototype: those outputs name nothing
    assert m["n_no_au_named"] == m["per_class"].get("neutral", {}).get("n_samples", 0)


# ------------------------------------------------------------------ frozen LLM
class StereotypeLLM:
    """A rule-based 'LLM' for checking the bookkeeping: it states the emotion whose EMFACS prototype
    overlaps the evidence most and names that whole prototype, present in the evidence or not."""

    def __init__(self):
        self.graph = resolve_graph("emfacs")
        self.calls = []

    def describe(self):
        return "stereotype rule"

    def answer(self, evidence: set[str], classes: list[str]) -> tuple[str, list[str]]:
        def support(c: str) -> tuple[int, int]:  # parents in evidence; ties to the first class
            shown = len(evidence & set(self.graph.parents(c))) if c in self.graph.classes else -1
            return shown, -classes.index(c)

        best = max(classes, key=support)
        return best, sorted(self.graph.parents(best)) if best in self.graph.classes else []

    def __call__(self, conversations, progress=False):
        self.calls.append(len(conversations))
        out = []
        for conv in conversations:
            user = conv[-1]["content"]
            evidence = set(re.findall(r"AU\d+", user.split("\n")[0]))
            classes = re.search(r"Which emotion is this \((.*?)\)\?", user).group(1).split(", ")
            stated, named = self.answer(evidence, classes)
            out.append(f"The emotion is {stated}, shown by {', '.join(named) or 'nothing'}.")
        return out


def test_frozen_llm_simulatability_matches_a_hand_count(data, test_records, monkeypatch, run_cli):
    import facr.audit.external as ext

    llm = StereotypeLLM()
    monkeypatch.setattr(ext, "make_chat", lambda options: llm)
    code, out, err = run_cli("audit", "--model", "frozen-llm", "--data", data, "--graph", "emfacs", "--limit", "10",
                             "--json")
    assert code == 0, err
    m = json.loads(out)
    classes = m["classes"]
    hits = {"self_sens": [0, 0], "self_inv": [0, 0], "sens": [0, 0], "inv": [0, 0]}
    queries = set()
    for r in test_records[:10]:
        ev = set(r.active_aus())
        queries.add(frozenset(ev))
        stated, named = llm.answer(ev, classes)
        for a in ev:
            queries.add(frozenset(ev - {a}))
            s1, n1 = llm.answer(ev - {a}, classes)
            pa = set(llm.graph.parents(stated)) if stated in llm.graph.classes else set()
            if pa:  # the paper's figures, against G
                key = "sens" if a in pa else "inv"
                hits[key][0] += (s1 != stated) if a in pa else (s1 == stated)
                hits[key][1] += 1
            if a in named:  # against its own answer
                hits["self_sens"][0] += a not in n1
                hits["self_sens"][1] += 1
            else:
                hits["self_inv"][0] += s1 == stated
                hits["self_inv"][1] += 1
    assert m["n_sensitivity_pairs"] == hits["sens"][1] and m["n_invariance_pairs"] == hits["inv"][1]
    assert m["n_self_sensitivity_pairs"] == hits["self_sens"][1]
    assert m["n_self_invariance_pairs"] == hits["self_inv"][1]
    assert m["simulatability_sensitivity"] == pytest.approx(hits["sens"][0] / hits["sens"][1])
    assert m["simulatability_invariance"] == pytest.approx(hits["inv"][0] / hits["inv"][1])
    assert m["self_simulatability_sensitivity"] == pytest.approx(hits["self_sens"][0] / hits["self_sens"][1])
    assert m["self_simulatability_invariance"] == pytest.approx(hits["self_inv"][0] / hits["self_inv"][1])
    assert "graph_simulatability_sensitivity" not in m  # renamed: the paper's figure is the headline now
    # a stereotype names its prototype whatever the evidence: removing a named AU rarely drops it
    assert m["self_simulatability_sensitivity"] < 0.5
    # identical evidence is asked once; the two rounds are two backend calls
    assert m["n_queries"] == len(queries) and len(llm.calls) == 2
    assert m["named_outside_evidence_per_frame"] > 0


@pytest.fixture(scope="module")
def served_tiny_llm():
    """`facr llm serve` of the tiny from-config LM on a free loopback port (a real HTTP server)."""
    proc = subprocess.Popen([sys.executable, "-m", "facr", "llm", "serve", "--model", "tiny-qwen3", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/v1)", line)
        assert match, f"no URL printed: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_endpoint_answers_equal_the_local_model(data, served_tiny_llm, run_cli):
    """The same frozen model asked through the OpenAI-compatible endpoint and in-process gives the
    same audit (greedy decoding, one query per call on both sides)."""
    common = ["audit", "--model", "frozen-llm", "--data", data, "--limit", "4", "--max-new-tokens", "12", "--json"]
    code, out, err = run_cli(*common, "--llm-url", served_tiny_llm, "--workers", "2")
    assert code == 0, err
    remote = json.loads(out)
    code, out, err = run_cli(*common, "--llm", "tiny-qwen3", "--generate-batch-size", "1")
    assert code == 0, err
    local = json.loads(out)
    assert remote["llm"].startswith("OpenAI-compatible endpoint http://127.0.0.1")
    for key in ("n_queries", "simulatability_sensitivity", "simulatability_invariance", "aus_per_frame",
                "n_sensitivity_pairs", "examples"):
        assert remote[key] == local[key], key


def test_endpoint_errors_are_one_line(data, served_tiny_llm, run_cli):
    from facr.external.llm import EndpointChat

    code, _, err = run_cli("audit", "--model", "frozen-llm", "--data", data, "--limit", "2",
                           "--llm-url", "http://127.0.0.1:9/v1", "--json")
    assert code == 2 and "cannot reach the endpoint" in err and err.count("\n") == 1
    bad = EndpointChat(served_tiny_llm.replace("/v1", "/v2"))
    with pytest.raises(Exception, match="HTTP 404"):
        bad.complete([{"role": "user", "content": "hi"}])
    with pytest.raises(Exception, match="http"):
        EndpointChat("127.0.0.1:8080")


@pytest.mark.slow
def test_frozen_smollm2_is_audited_with_its_own_answers(data, test_records, run_cli):
    """The real offline instruct model: the audit's sensitivity pairs are exactly what the model says
    when asked again without the named AU."""
    from facr.audit.external import frozen_prompt, read_named
    from facr.external.generations import extract_emotion
    from facr.external.llm import LocalChat

    code, out, err = run_cli("audit", "--model", "frozen-llm", "--data", data, "--limit", "3",
                             "--max-new-tokens", "40", "--json")
    assert code == 0, err
    m = json.loads(out)
    assert m["n_samples"] == 3 and m["llm"] == "local transformers model smollm2-135m"
    chat = LocalChat("smollm2-135m", max_new_tokens=40)
    hits = pairs = answered = 0
    for r in test_records[:3]:
        ev = r.active_aus()
        answer = chat([frozen_prompt(ev, m["classes"])])[0]
        answered += extract_emotion(answer, m["classes"]) is not None
        named = set(read_named(answer)) & set(ev)
        for a in named:
            after = read_named(chat([frozen_prompt([x for x in ev if x != a], m["classes"])])[0])
            hits += a not in after
            pairs += 1
    assert m["n_self_sensitivity_pairs"] == pairs
    assert m["self_simulatability_sensitivity"] == (pytest.approx(hits / pairs) if pairs else None)
    assert m["emotion_answered_rate"] == pytest.approx(answered / 3)


def test_other_reasoners_are_experiment_arms(data, tmp_path, monkeypatch, run_cli):
    import facr.audit.external as ext

    monkeypatch.setattr(ext, "make_chat", lambda options: StereotypeLLM())
    gen = tmp_path / "s.jsonl"
    assert run_cli("emola", "stand-in", "--data", data, "--split", "all", "--out", gen)[0] == 0
    spec = tmp_path / "exp.yaml"
    spec.write_text(f"""
name: others
train_config: null
data: {{path: {data}}}
seeds: [0, 1]
arms:
  - name: EmoLA stand-in (not EmoLA)
    model: emola
    options: {{generations: {gen}}}
  - name: frozen LLM
    model: frozen-llm
    options: {{limit: 12}}
audit: {{split: all, graph: emfacs}}
metrics: [graph_causal_agreement, active_au_recall, active_au_precision, aus_per_frame]
per_class: ["EmoLA stand-in (not EmoLA)"]
""")
    code, out, err = run_cli("experiment", "run", spec, "--out", tmp_path / "exp", "--json", "--no-progress")
    assert code == 0, err
    res = json.loads(out)
    assert res["n_cells"] == 2  # deterministic arms: one cell each, whatever the seeds
    cell = tmp_path / "exp" / "cells" / "emola-stand-in-not-emola" / "seed0" / "fixed"
    standin = json.loads((cell / "audit.json").read_text())
    assert standin["n_samples"] == 72
    assert res["arms"]["EmoLA stand-in (not EmoLA)"]["graph_causal_agreement"]["n_subjects"] == 6
    assert res["arms"]["frozen LLM"]["aus_per_frame"]["mean"] > 0
    assert "neutral" in res["per_class"]["EmoLA stand-in (not EmoLA)"]
    # a second run reuses both cells
    code, out, err = run_cli("experiment", "run", spec, "--out", tmp_path / "exp", "--json", "--no-progress")
    assert code == 0 and "2 done, 0 to run" in err


def test_hf_vlm_generations_feed_the_emola_audit(data, test_records, tmp_path, run_cli):
    """`facr emola generate --model hf-vlm` on a tiny LLaVA folder, then `facr audit --model emola` on
    its file: one line per face, joined back to the records it came from."""
    from facr.testing import tiny_llava

    vlm = tiny_llava(tmp_path / "llava")
    out = tmp_path / "vlm.jsonl"
    code, stdout, err = run_cli("emola", "generate", "--model", "hf-vlm", "--vlm", vlm, "--data", data, "--limit", "3",
                                "--max-new-tokens", "8", "--out", out, "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["n_lines"] == 3 and summary["tasks"] == ["au", "emotion"]
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["image"] for x in lines] == [record_key(r, data) for r in test_records[:3]]
    assert all(x["source"] == f"hf-vlm {vlm}" and isinstance(x["emotion_output"], str) for x in lines)
    code, stdout, err = run_cli("audit", "--model", "emola", "--generations", out, "--data", data, "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["n_samples"] == 3 and m["n_unmatched_lines"] == 0 and m["sources"] == [f"hf-vlm {vlm}"]
    code, _, err = run_cli("emola", "generate", "--model", "hf-vlm", "--data", data, "--out", tmp_path / "v2.jsonl")
    assert code == 2 and "--vlm PATH" in err
    code, _, err = run_cli("emola", "generate", "--model", "hf-vlm", "--vlm", vlm, "--data", data, "--out", out)
    assert code == 2 and err.endswith(": already exists; pass --overwrite to replace it\n")  # checked before loading


@pytest.mark.slow
def test_shipped_standin_file_is_what_the_documented_command_writes(repo, tmp_path, run_cli):
    """audits/generations/synth_table4_emola_standin.jsonl is exactly `facr emola stand-in` on the
    Table IV twin's audit set (labels do not depend on the image size, so a small render will do)."""
    from facr.audit.experiment import load_experiment

    spec = load_experiment(repo / "audits" / "synth_table4.yaml")
    arm = next(a for a in spec.arms if a.model == "emola")
    shipped = repo / arm.options["generations"]
    synth = dict(spec.audit.data.synth, size=32)
    data = tmp_path / "synth-emotion-b"
    write_synth(data, SynthConfig.from_dict(synth), workers=1)
    out = tmp_path / "standin.jsonl"
    code, _, err = run_cli("emola", "stand-in", "--data", data, "--split", "all", "--out", out)
    assert code == 0, err
    assert out.read_bytes() == shipped.read_bytes()
    assert "NOT" in arm.name
    assert all("NOT EmoLA output" in json.loads(x)["source"] for x in out.read_text().splitlines())
