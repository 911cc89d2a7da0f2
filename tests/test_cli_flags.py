"""Flags generated from config dataclasses (facr.flags): a default is stated once, in the dataclass; the
commands whose flags mirror a config take theirs from it."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

import pytest

from facr.flags import add_fields, flag_of, given


@dataclass
class Toy:
    name: str = field(metadata={"help": "what to call it"})
    n_rounds: int = field(default=7, metadata={"flag": "--rounds", "help": "rounds (odd)"})
    rate: float | None = field(default=None, metadata={"help": "a rate (default: the file's)"})
    check: bool = field(default=True, metadata={"flag": "--no-check", "help": "skip the check"})
    loud: bool = field(default=False, metadata={"help": "say more"})
    tags: list[str] | None = field(default=None, metadata={"flag": "--tag", "action": "append", "help": "a tag"})
    kind: str = field(default="a", metadata={"choices": ("a", "b"), "help": "the kind"})


@dataclass
class Outer:
    toy: Toy = field(default_factory=lambda: Toy(name="t"))
    table: dict[str, float] | None = None


NAMES = ("name", "n_rounds", "rate", "check", "loud", "tags", "kind")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="toy")
    add_fields(p, Toy, NAMES)
    return p


def test_flags_help_and_defaults_come_from_the_dataclass():
    text = " ".join(_parser().format_help().split())
    assert "--name NAME what to call it" in text and "--rounds ROUNDS rounds (odd; default 7)" in text
    assert "a rate (default: the file's)" in text  # the help speaks of its default: nothing appended
    assert "--no-check skip the check" in text and "--loud say more" in text
    assert "--kind {a,b} the kind (default a)" in text
    with pytest.raises(SystemExit):
        _parser().parse_args([])  # a field without a default is a required flag


def test_given_holds_only_the_flags_the_user_gave():
    args = _parser().parse_args(["--name", "x", "--rounds", "3", "--no-check", "--tag", "p", "--tag", "q"])
    assert given(args, Toy, NAMES) == {"name": "x", "n_rounds": 3, "check": False, "tags": ["p", "q"]}
    args = _parser().parse_args(["--name", "x", "--loud", "--rate", "0.5"])
    values = given(args, Toy, NAMES)
    assert values == {"name": "x", "loud": True, "rate": 0.5}
    assert Toy(**values).n_rounds == 7  # the default is the dataclass's, never a copy in the parser


def test_dotted_names_reach_nested_configs_and_extra_renames_a_flag():
    p = argparse.ArgumentParser()
    add_fields(p, Outer, ["toy.n_rounds", "toy.kind"], extra={"toy.kind": {"flag": "--toy-kind"}})
    args = p.parse_args(["--rounds", "5", "--toy-kind", "b"])
    assert given(args, Outer, ["toy.n_rounds", "toy.kind"], extra={"toy.kind": {"flag": "--toy-kind"}}) == {
        "toy.n_rounds": 5, "toy.kind": "b"}
    assert flag_of(Outer, "toy.n_rounds") == "--rounds"


def test_a_field_no_flag_can_hold_is_refused_when_the_parser_is_built():
    with pytest.raises(TypeError, match="table"):
        add_fields(argparse.ArgumentParser(), Outer, ["table"])


def _defaults(cls) -> dict:
    return {f.name: f.default for f in dataclasses.fields(cls)}


def test_commands_default_to_their_dataclass():
    """The defaults that used to be stated twice are the dataclass's: the help shows them, and a command
    given no flag for them builds the dataclass's values."""
    from facr.audit.auditors import AuditRequest
    from facr.cli import build_parser
    from facr.cli.audit import AUDIT_FIELDS
    from facr.cli.graph import INDUCE_FIELDS
    from facr.graph.induce import InductionConfig

    argv = ["audit", "--model", "m"]
    assert given(build_parser(argv).parse_args(argv), AuditRequest, AUDIT_FIELDS) == {"model": "m"}
    argv = ["graph", "induce", "t.csv", "--out", "g.json"]
    assert given(build_parser(argv).parse_args(argv), InductionConfig, INDUCE_FIELDS) == {}
    induce = " ".join(dict(_walk(build_parser(["graph", "induce"])))[("graph", "induce")].format_help().split())
    assert f"--bootstrap BOOTSTRAP bootstrap resamples for edge stability (default " \
           f"{_defaults(InductionConfig)['n_bootstrap']})" in induce
    audit = " ".join(dict(_walk(build_parser(["audit"])))[("audit",)].format_help().split())
    assert f"--batch-size BATCH_SIZE batch size (default {_defaults(AuditRequest)['batch_size']})" in audit


def _walk(parser, words=()):
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*words, name))


def test_every_train_reasoner_flag_sets_a_train_config_field_of_its_type():
    from facr.cli import build_parser
    from facr.train import TrainConfig
    from facr.train_args import OVERRIDES, overrides_from_args

    samples = {str: "x", int: "3", float: "0.25"}
    argv = ["train", "reasoner"]
    for flag, (key, _) in OVERRIDES.items():
        *parents, last = key.split(".")
        cls = TrainConfig
        for part in parents:
            cls = {f.name: f for f in dataclasses.fields(cls)}[part].default_factory
        hint = {f.name: f.type for f in dataclasses.fields(cls)}[last]
        kind = next(t for t in (bool, float, int, str) if t.__name__ in str(hint))
        argv += [flag] if kind is bool else [flag, samples[kind]]  # a boolean flag takes no value
    over = overrides_from_args(build_parser(argv).parse_args(argv))
    assert set(over) == {key for key, _ in OVERRIDES.values()}
    assert over["lr"] == 0.25 and over["epochs"] == 3 and over["data.path"] == "x" and over["loss.lambda_s"] == 0.25


def test_the_generate_batch_size_is_one_value_for_the_command_and_the_frozen_llm(monkeypatch):
    import facr.external.llm
    from facr.audit import GENERATE_BATCH_SIZE
    from facr.audit.external import make_chat
    from facr.cli import build_parser

    argv = ["audit", "--model", "m"]
    assert build_parser(argv).parse_args(argv).generate_batch_size is None  # the auditors' one default applies
    audit = " ".join(dict(_walk(build_parser(argv)))[("audit",)].format_help().split())
    assert f"per generate call (default {GENERATE_BATCH_SIZE})" in audit

    class Chat:  # LocalChat's signature, without loading a model
        def __init__(self, name, *, max_new_tokens, batch_size, load_in_4bit):
            self.name, self.batch_size = name, batch_size

    monkeypatch.setattr(facr.external.llm, "LocalChat", Chat)
    from facr.audit.options import FrozenLLMOptions, VerbalizerOptions

    assert make_chat(FrozenLLMOptions()).batch_size == GENERATE_BATCH_SIZE  # was 16 here, 64 through facr audit
    assert make_chat(FrozenLLMOptions(generate_batch_size=5)).batch_size == 5
    assert VerbalizerOptions().generate_batch_size == GENERATE_BATCH_SIZE
