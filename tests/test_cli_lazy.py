"""The ``facr`` command builds only the parser of the command it runs: ``facr --help``, ``facr au …`` and
``facr graph …`` import no torch (nor transformers, gradio), and the lazily built parser of every command is
the one the full parser holds (what the CLI reference shows)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "gradio", "accelerate")

# run in a fresh interpreter: which heavy modules the command left in sys.modules, and its exit status
PROBE = """
import json, sys
from facr.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as exc:
    status = exc.code
print(json.dumps({"status": status, "heavy": [m for m in %r if m in sys.modules]}))
"""


@pytest.mark.parametrize("argv", [
    ["--help"], ["au", "list"], ["au", "parse", "AU04_r"], ["graph", "--help"],
    ["graph", "validate", "graphs/emfacs.json"], ["graph", "show", "emfacs", "--json"],
    ["graph", "diff", "emfacs", "pspi"], ["graph", "induce", "--help"], ["train", "--help"], ["audit", "--help"],
])
def test_light_commands_import_no_torch(argv, repo):
    proc = subprocess.run([sys.executable, "-c", PROBE % (HEAVY,), *argv], cwd=repo, capture_output=True,
                          text=True, timeout=300)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"status": 0, "heavy": []}, proc.stderr


def test_a_torch_command_still_gets_its_flags(repo):
    """The probe sees torch where a command needs it: the light runs above are light, not blind."""
    proc = subprocess.run([sys.executable, "-c", PROBE % (HEAVY,), "train", "reasoner", "--help"], cwd=repo,
                          capture_output=True, text=True, timeout=300)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] == 0 and "torch" in result["heavy"]
    assert "--lambda-s" in proc.stdout


def _commands(parser, words=()):
    """(words, parser) of every command below ``parser``, depth first."""
    import argparse

    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*words, name))


def test_each_command_built_alone_is_the_one_the_full_parser_holds():
    from facr.cli import build_parser

    full = dict(_commands(build_parser()))
    assert len(full) > 30
    for words, parser in full.items():
        if not words:
            continue
        alone = dict(_commands(build_parser(list(words))))[words]
        assert alone.format_help() == parser.format_help(), words
