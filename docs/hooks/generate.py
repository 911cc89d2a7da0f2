"""mkdocs hook: the pages made at build time, so each has one source.

* ``cli.md`` — the CLI reference: every ``facr`` command's ``--help``, walked from the parser
  ``facr.cli.build_parser()`` builds, so it cannot drift from the code;
* pages made from repository files outside ``docs/``: the front page from ``README.md``,
  ``BENCHMARKS.md``, ``audits/README.md`` (the experiment files), each committed
  ``audits/results/<name>/results.md``, and ``graphs/SPEC.md`` / ``graphs/README.md`` (the graph
  format and how to swap a graph).

A link in a copied file to another copied file is rewritten to that file's page; a link to any other
repository file becomes its path in code (the site holds no copy of it), so ``mkdocs build --strict``
checks every link that is left.
"""

from __future__ import annotations

import argparse
import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def _copied() -> dict[str, str]:
    """Repository path → page of every file the site copies."""
    pages = {"README.md": "index.md", "BENCHMARKS.md": "benchmarks.md", "audits/README.md": "experiments.md",
             "graphs/SPEC.md": "graph-format.md", "graphs/README.md": "graph-swap.md"}
    for results in sorted((ROOT / "audits" / "results").glob("*/results.md")):
        pages[results.relative_to(ROOT).as_posix()] = f"results/{results.parent.name}.md"
    return pages


def _rewrite(text: str, source: str, page: str, pages: dict[str, str]) -> str:
    """``text`` of repository file ``source`` as site page ``page``: its relative links resolved."""
    def sub(m: re.Match) -> str:
        bang, label, target = m.groups()
        if re.match(r"[a-z]+:|#", target):
            return m.group(0)
        path, _, anchor = target.partition("#")
        repo_path = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
        if repo_path in pages:
            rel = posixpath.relpath(pages[repo_path], posixpath.dirname(page) or ".")
            return f"{bang}[{label}]({rel}{'#' + anchor if anchor else ''})"
        if repo_path.startswith("docs/"):
            rel = posixpath.relpath(repo_path[len("docs/"):], posixpath.dirname(page) or ".")
            return f"{bang}[{label}]({rel})"
        return label if label.strip("`") == repo_path else f"{label} (`{repo_path}`)"

    return _LINK.sub(sub, text)


def _walk(parser: argparse.ArgumentParser, prog: str):
    """(command, parser) for ``parser`` and every subcommand below it, depth first."""
    yield prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{prog} {name}")


def cli_reference() -> str:
    """The CLI reference page: every command's help, as ``facr … --help`` prints it."""
    from facr.cli import build_parser

    lines = ["# CLI reference", "",
             "Every `facr` command with its `--help`, generated from the parser when the site is built.", ""]
    for command, parser in _walk(build_parser(), "facr"):
        parser.prog = command
        lines += [f"## `{command}`", "", "```text", parser.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


def on_files(files, config):
    pages = _copied()
    for source, page in pages.items():
        text = _rewrite((ROOT / source).read_text(encoding="utf-8"), source, page, pages)
        files.append(File.generated(config, page, content=text))
    files.append(File.generated(config, "cli.md", content=cli_reference()))
    return files
