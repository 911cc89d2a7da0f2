"""The ``facr`` parser and entry point: one :class:`~facr.cli.base.Group` per module of this package.

Only the command a line names is built in full: the others are one-line stubs (the name and help
``facr --help`` lists), so ``facr --help``, ``facr au …`` and ``facr graph …`` import neither torch nor
any other command's dependencies. :func:`build_parser` without ``argv`` builds everything (the CLI
reference, tests).

Errors a user can cause are :class:`~facr.errors.FacrError`; they are caught here only, printed as one
line ``facr: <file>: <problem>`` on stderr, and the exit status is 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from facr import __version__
from facr.cli.base import Command, Group, check_flag
from facr.cli.explain import _route_explain
from facr.errors import FacrError

# the modules of facr.cli holding a GROUP, in the order `facr --help` lists them
GROUPS = ("au", "graph", "data", "train", "audit", "explain", "frontend", "experiment", "models", "emola", "llm",
          "chat")
ALL = "*"  # build every command in full


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        """A usage error is one line too (argparse prints the whole usage first), exit 2."""
        self.exit(2, f"facr: {message} (see: {self.prog} --help)\n")


def _add_command(subparsers, name: str, help: str, command: Command) -> None:
    """``command``'s parser in full: its text, its flags, the function it runs."""
    p = subparsers.add_parser(name, **({"help": help} if help else {}), description=command.description or help,
                              epilog=command.epilog, **({"prog": command.prog} if command.prog else {}))
    command.arguments(p)
    p.set_defaults(func=command.run)


def _add_group(nouns, group: Group, verb: str | None) -> None:
    """``facr <noun>``: the verb named ``verb`` in full (every verb with :data:`ALL`), the others as stubs."""
    if group.command is not None:
        _add_command(nouns, group.name, group.help, group.command)
        return
    p = nouns.add_parser(group.name, help=group.help, description=group.help)
    verbs = p.add_subparsers(dest="verb", required=True, metavar=group.metavar)
    for command in group.commands:
        if verb in (ALL, command.name):
            _add_command(verbs, command.name, command.help, command)
        else:
            verbs.add_parser(command.name, **({"help": command.help} if command.help else {}))


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``facr`` parser: in full, or (given the command line ``argv``) with only the command it names
    built in full."""
    noun = verb = ALL
    if argv is not None:
        words = list(argv)
        noun = words[0] if words and not words[0].startswith("-") else None
        verb = words[1] if len(words) > 1 else None
    parser = _Parser(
        prog="facr",
        description="Faithful facial-emotion explanations: AU->emotion causal graphs, faithful reasoners, audits.",
        epilog="examples:\n  facr graph show graphs/emfacs.json\n  facr au parse 'AU04_r' 'Lip Corner Puller'",
    )
    parser.add_argument("--version", action="version", version=f"facr {__version__}")
    nouns = parser.add_subparsers(dest="noun", required=True, metavar="{" + ",".join(GROUPS) + "}")
    for name in GROUPS:
        group: Group = importlib.import_module(f"facr.cli.{name}").GROUP
        if noun in (ALL, name):
            _add_group(nouns, group, verb)
        else:
            nouns.add_parser(name, help=group.help)
    return parser


def _check_seed(args) -> None:
    """``--seed`` of every command, checked once here: numpy refuses a negative seed deep inside a run."""
    from facr.config import MAX_SEED

    if isinstance(getattr(args, "seed", None), int):
        check_flag("--seed", args.seed, 0, MAX_SEED)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``facr`` command; returns the exit status."""
    argv = _route_explain(list(sys.argv[1:] if argv is None else argv))
    args = build_parser(argv).parse_args(argv)
    try:
        _check_seed(args)
        return int(args.func(args) or 0)
    except FacrError as exc:
        print(f"facr: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facr: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) stopped early: not an error of ours. Point stdout at
        # devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
