"""The rationale audit: regenerate under every do(z_k = 0), read the named AUs, score them."""

from __future__ import annotations

import json

import numpy as np
import torch
from transformers import LogitsProcessor

from facr.audit.metrics import Explanation
from facr.audit.rationale import RationaleRows, generate_rows, intervention_rows, score_rationales
from facr.testing import tiny_backbone
from facr.verbalizer.model import Verbalizer, VerbalizerConfig, load_verbalizer
from facr.verbalizer.plan import RationalePlan

AUS = ["AU4", "AU6", "AU12"]
CLASSES = ["happiness", "sadness"]
SIGNS = np.array([[0, 1], [1, 0], [1, 0]])  # AU6, AU12 -> happiness; AU4 -> sadness


def _rows(zs, emotions):
    z = torch.tensor(zs, dtype=torch.float32)
    n = len(zs) // (len(AUS) + 1)
    return RationaleRows(z, emotions, torch.ones_like(z, dtype=torch.bool), np.repeat(np.arange(n), len(AUS) + 1),
                         np.tile(np.arange(-1, len(AUS)), n))


def test_scores_match_a_hand_count():
    base = [0.2, 0.9, 0.8]
    zs = [base, [0.0, 0.9, 0.8], [0.2, 0.0, 0.8], [0.2, 0.9, 0.0]]
    texts = ["the face shows AU6 and AU12; happiness.",  # factual
             "the face shows AU6 and AU12; happiness.",  # do(AU4): irrelevant to happiness, unchanged
             "the face shows AU12; happiness.",  # do(AU6): dropped — a sensitivity hit
             "the face shows AU6 and AU12; happiness."]  # do(AU12): still named although z = 0
    m = score_rationales(texts, _rows(zs, ["happiness"] * 4), AUS, CLASSES, SIGNS, [{"AU6", "AU12"}],
                         [Explanation(set(), None, "happiness", active={"AU6", "AU12"})], np.array(["s1"]), ci=False)
    assert m["rationale_sensitivity"] == 0.5 and m["pairs"]["causal"] == 2
    assert m["rationale_invariance"] == 1.0 and m["pairs"]["irrelevant"] == 1
    assert m["ablated_au_drop_rate"] == 0.5
    assert m["named_inactive"] == 1  # AU12 named from the latent where z_AU12 = 0
    assert m["named_equals_target"] == 1.0 and m["aus_per_rationale"] == 2.0 and m["empty_rationale_rate"] == 0.0
    assert m["graph_causal_agreement"] == 1.0 and m["active_au_precision"] == 1.0
    assert m["examples"][0]["intervention"] == "do(AU6 = 0)" and m["examples"][0]["named_after"] == ["AU12"]


def test_invariance_reads_the_causal_aus_and_strict_reads_the_whole_set():
    base = [0.9, 0.9, 0.8]
    zs = [base, [0.0, 0.9, 0.8], [0.9, 0.0, 0.8], [0.9, 0.9, 0.0]]
    texts = ["AU4, AU6 and AU12", "AU6", "AU4 and AU12", "the brow lowerer and AU6"]  # FACS names count too
    m = score_rationales(texts, _rows(zs, ["happiness"] * 4), AUS, CLASSES, SIGNS, [{"AU6", "AU12"}],
                         [Explanation(set(), None, None)], np.array(["s1"]), ci=False)
    # the one irrelevant do (AU4) drops AU4 itself and AU12: causal AUs changed -> invariance 0
    assert m["rationale_invariance"] == 0.0 and m["rationale_invariance_strict"] == 0.0
    assert m["rationale_sensitivity"] == 1.0  # AU6 and AU12 both dropped when ablated
    assert m["active_au_precision"] is None  # no AU labels coded
    texts[1] = "AU6 and AU12"  # now only the ablated AU4 itself left the text
    m = score_rationales(texts, _rows(zs, ["happiness"] * 4), AUS, CLASSES, SIGNS, [set()],
                         [Explanation(set(), None, None)], np.array(["s1"]), ci=False)
    assert m["rationale_invariance"] == 1.0 and m["rationale_invariance_strict"] == 1.0
    assert m["named_equals_target"] == 0.0


class _EagerPlainText(LogitsProcessor):
    """A backbone that spells AUs with ordinary tokens — "AU4" as a word, "brow lowerer" — not with
    the added <AU4> tokens the logit bias acts on: step t strongly prefers word t of a cycle."""

    CYCLE = ["AU", "4", "and", "AU", "6", "brow", "lowerer", "AU", "2", "5", "and"]

    def __init__(self, tokenizer):
        self.ids = tokenizer.convert_tokens_to_ids(self.CYCLE)

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, self.ids[input_ids.shape[1] % len(self.ids)]] += 60.0
        return scores


def test_the_hard_gate_also_holds_for_plain_text_spellings():
    lm, tok = tiny_backbone("qwen3")
    v = Verbalizer(VerbalizerConfig(backbone="tiny-qwen3", aus=["AU4", "AU6", "AU12", "AU25"], classes=CLASSES,
                                    n_prompt=2, prompt_hidden=16, max_new_tokens=14, no_repeat_ngram_size=0,
                                    repetition_penalty=1.0), lm, tok)
    torch.manual_seed(1)
    z = torch.rand(24, 4)
    eager = _EagerPlainText(tok)
    plans = [RationalePlan([a for a, x in zip(v.config.aus, row) if x >= 0.5], "happiness", 0.8) for row in z]
    gated = v.generate(z, ["happiness"] * 24, plans=plans, extra_processors=[eager])
    ungated = v.generate(z, ["happiness"] * 24, mode="ungated", extra_processors=[eager])

    def named(texts: list[str]) -> list[set[str]]:
        return [set(v.named_aus(t)) for t in texts]

    assert sum(len(s) for s in named(gated)) >= 24  # active AUs are still written out ...
    for p, s in zip(plans, named(gated)):  # ... exactly the plan's, inactive ones never, in any spelling
        assert s == set(p.aus), s
    inactive = sum(row[v.config.aus.index(a)] < 0.5 for row, s in zip(z, named(ungated)) for a in s)
    assert inactive >= 10


def test_rows_state_the_heads_emotion_under_each_intervention(reasoner, trained_verbalizer):
    from facr.audit.auditors import AuditRequest, run_reasoner_pass
    from facr.causal import graph_signs

    data, run_dir = reasoner
    run = run_reasoner_pass(AuditRequest(model=str(run_dir), data=str(data), limit=10, oracle=False, ci=False))
    ev, cfg = run.evaluation, run.model.config
    rows = intervention_rows(run.model.head.eval(), torch.from_numpy(ev.z), list(cfg.classes),
                             graph_signs(run.own_graph, cfg.aus, cfg.classes), list(cfg.aus))
    K = len(cfg.aus)
    assert len(rows) == 10 * (K + 1)
    emotions = np.array(rows.emotions).reshape(10, K + 1)
    assert list(emotions[:, 0]) == [cfg.classes[p] for p in ev.predicted]
    assert (emotions[:, 1:] == np.array(cfg.classes)[ev.cf_logits.argmax(axis=2)]).all()
    invoked = ev.score().invoked  # the factual rows' allowed sets are the audit's invoked AUs
    for n in range(10):
        got = {cfg.aus[k] for k in torch.nonzero(rows.allowed[n * (K + 1)]).flatten().tolist()}
        assert got == set(invoked[n])
        plan = rows.plans[n * (K + 1)]  # the plan: those the latent shows, largest effect first, p(ĉ)
        assert plan.aus == ev.seen(n, invoked[n]) and plan.emotion == cfg.classes[ev.predicted[n]]
        assert 0.0 < plan.probability <= 1.0
    assert torch.equal(rows.z[1::K + 1][:, 0], torch.zeros(10))  # row 1 of each face: do(z_0 = 0)


def test_batched_generation_gives_the_same_rationales_as_one_call_per_row(reasoner, trained_verbalizer):
    out, _ = trained_verbalizer
    v = load_verbalizer(out / "verbalizer")
    torch.manual_seed(0)
    z = torch.rand(3 * 9, len(v.config.aus))
    emotions = ["happiness", "sadness", "fear"] * 9
    plans = [RationalePlan([a for a, x in zip(v.config.aus, row) if x >= 0.5][:3], e, 0.5)
             for row, e in zip(z, emotions)]
    rows = RationaleRows(z, emotions, torch.rand(27, len(v.config.aus)) > 0.5,
                         np.repeat(np.arange(3), 9), np.tile(np.arange(-1, 8), 3), plans)
    for mode in ("gated", "soft"):
        batched = generate_rows(v, rows, mode, batch_size=64)
        single = generate_rows(v, rows, mode, batch_size=1)
        assert [v.named_aus(t) for t in batched] == [v.named_aus(t) for t in single]
        assert batched == single


def test_facr_audit_rationale_cli(reasoner, trained_verbalizer, run_cli, tmp_path):
    data, run_dir = reasoner
    out, _ = trained_verbalizer
    code, stdout, err = run_cli("audit", "--model", out, "--data", data, "--rationale", "--limit", 6, "--json",
                                "--out", tmp_path / "report")
    assert code == 0, err
    m = json.loads(stdout)
    for key in ("n_samples", "rationale_sensitivity", "rationale_invariance", "named_inactive", "free_drop_rate"):
        assert key in m, key
    assert m["n_samples"] == 6 and m["mode"] == "gated" and list(m["modes"]) == ["gated", "soft", "ungated"]
    assert m["well_formed_rate"] == 1.0 and m["named_equals_target"] == 1.0 and m["empty_rationale_rate"] <= 1.0
    assert m["fluency_nll"] > 0 and m["template_nll"] > 0
    assert m["named_inactive"] == 0 and m["modes"]["gated"]["named_inactive"] == 0
    assert m["modes"]["gated"]["n_rationales"] == 6 * (len(m["aus"]) + 1)
    report = (tmp_path / "report" / "report.md").read_text()
    assert "rationale sensitivity" in report and (tmp_path / "report" / "rationale.png").exists()
    code, stdout, err = run_cli("audit", "--model", out, "--data", data, "--rationale", "--limit", 2,
                                "--mode", "soft", "--no-progress")
    assert code == 0, err
    assert "rationale sensitivity" in stdout and "soft" in stdout and "ungated" not in stdout
    # without --rationale: the latent audit of the reasoner the verbalizer speaks for
    code, stdout, err = run_cli("audit", "--model", out, "--data", data, "--limit", 10, "--json", "--no-oracle")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["model_kind"] == "reasoner" and m["verbalizer"].endswith("verbalizer") and m["n_samples"] == 10


def test_rationale_audit_errors_are_one_line(reasoner, trained_verbalizer, run_cli, tmp_path):
    import shutil

    data, run_dir = reasoner
    out, _ = trained_verbalizer
    code, _, err = run_cli("audit", "--model", run_dir, "--data", data, "--rationale")
    assert code == 2 and "--rationale" in err and err.count("\n") == 1
    moved = tmp_path / "moved"
    shutil.copytree(out / "verbalizer", moved)
    cfg = json.loads((moved / "config.json").read_text())
    cfg["reasoner"] = str(tmp_path / "gone")
    (moved / "config.json").write_text(json.dumps(cfg))
    code, _, err = run_cli("audit", "--model", moved, "--data", data, "--rationale")
    assert code == 2 and "config.json" in err and "--reasoner" in err and err.count("\n") == 1
    code, stdout, err = run_cli("audit", "--model", moved, "--reasoner", run_dir, "--data", data, "--rationale",
                                "--limit", 1, "--mode", "gated", "--json")
    assert code == 0, err
    assert json.loads(stdout)["reasoner"] == str(run_dir)
