"""``facr``: one subcommand per job, thin wrappers over the public API.

One module per command group (``facr.cli.graph`` holds ``facr graph …``), each declaring its commands
as a :class:`~facr.cli.base.Group`; :mod:`facr.cli.core` builds the parser (only the command a line
names in full) and runs it. Errors a user can cause are :class:`~facr.errors.FacrError`; they are
caught in :func:`main` only, printed as one line ``facr: <file>: <problem>`` on stderr, exit status 2.
"""

from facr.cli.core import build_parser, main
from facr.cli.explain import _route_explain

__all__ = ["build_parser", "main", "_route_explain"]
