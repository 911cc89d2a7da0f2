"""Each auditor's typed options: checked by field, a misplaced one named in one line, the flags of
``facr audit`` generated from them."""

from __future__ import annotations

import pytest

from facr.audit.auditors import AUDITORS, AuditRequest, options_of
from facr.audit.options import MAP_METHOD_NAMES, EmolaOptions, FrozenLLMOptions, ReasonerOptions, VerbalizerOptions
from facr.errors import FacrError


def _read(cls, **options):
    return options_of(AuditRequest(model="m", options=options), cls)


def test_options_are_read_typed_with_their_defaults_and_unset_flags_left_out():
    o = _read(FrozenLLMOptions, llm_url="http://x/v1", workers=2, evidence=None, rationale=False)
    assert (o.llm_url, o.workers, o.max_new_tokens, o.llm) == ("http://x/v1", 2, 96, "smollm2-135m")
    v = _read(VerbalizerOptions, rationale=True, modes=["gated"], pixel_limit=None)
    assert v.rationale and v.modes == ["gated"] and v.generate_batch_size == 64 and v.maps is False


@pytest.mark.parametrize("cls, options, line", [
    (ReasonerOptions, {"generations": "g.jsonl"},
     "--generations: not an option of the reasoner auditor (--model m); its options: --map-method, --maps, "
     "--pixel-cf, --pixel-limit"),
    (ReasonerOptions, {"pixel_limit": 0}, "--pixel-limit: must be >= 1, got 0"),
    (ReasonerOptions, {"pixel_cf": "blur"}, "--pixel-cf: must be one of auto, rerender, occlusion, got 'blur'"),
    (FrozenLLMOptions, {"workers": 0}, "--workers: must be in [1, 64], got 0"),
    (FrozenLLMOptions, {"max_new_tokens": "many"}, "--max-new-tokens: expected an integer, got 'many'"),
    (EmolaOptions, {"llm": "x"}, "--llm: not an option of the emola auditor (--model m); its options: "
                                 "--generations, --pixel-cf, --pixel-limit"),
])
def test_a_bad_or_misplaced_option_is_one_line_naming_its_flag(cls, options, line):
    with pytest.raises(FacrError) as err:
        _read(cls, **options)
    assert str(err.value) == line


def test_every_auditor_declares_its_options_and_the_map_methods_match_the_registry():
    from facr.explain.maps import METHODS

    assert {n: a.options for n, a in AUDITORS.items()} == {
        "reasoner": ReasonerOptions, "emola": EmolaOptions, "frozen-llm": FrozenLLMOptions,
        "verbalizer": VerbalizerOptions}
    assert MAP_METHOD_NAMES == METHODS


def test_facr_audit_refuses_an_option_the_auditor_does_not_take(run_cli, reasoner):
    data, run = reasoner
    code, out, err = run_cli("audit", "--model", run, "--data", data, "--generations", "g.jsonl", "--json")
    assert code == 2 and out == "" and err.startswith("facr: --generations: not an option of the reasoner auditor")
    assert err.count("\n") == 1
