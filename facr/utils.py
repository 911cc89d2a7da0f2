"""Small shared helpers: atomic file writes (folders: :mod:`facr.outputs`), canonical JSON, seeding."""

from __future__ import annotations

import contextlib
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from facr.errors import FacrError

# one-file outputs checked absent before the work (facr.outputs.output_file without --overwrite): a file that
# appears there while facr works is not replaced when the result is renamed into place
_MUST_BE_NEW: set[Path] = set()


def expect_new(path: str | os.PathLike, new: bool = True) -> None:
    """:func:`atomic_path` must not replace a file at ``path`` (``new``: it was not there when the command
    began), or may again (``new`` False: the command replaces it with --overwrite)."""
    (_MUST_BE_NEW.add if new else _MUST_BE_NEW.discard)(Path(path).absolute())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The temporary file keeps ``path``'s suffix so writers that choose a format from the
    extension (matplotlib, PIL) behave. On any exception the temporary file is removed
    and ``path`` is left as it was: nothing half-written is ever visible. The file gets the
    permissions a new file gets (umask), or those of the file it replaces. A path given to
    :func:`expect_new` whose file appeared meanwhile is left as it is (:class:`FacrError`).
    """
    path = file_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f"{path.suffix}.tmp{path.suffix}", dir=path.parent)
    except OSError as exc:  # a parent that is a file, no permission, a full disk
        raise FacrError(path, f"cannot write: {exc.strerror or exc}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        try:  # mkstemp makes 0600: give the file the mode of the one it replaces, else a new file's
            mode = path.stat().st_mode & 0o777
        except OSError:
            mode = 0o666 & ~current_umask()
        os.chmod(tmp_path, mode)
        if path.absolute() in _MUST_BE_NEW and os.path.lexists(path):
            raise FacrError(path, "appeared while facr was working: left as it is, and nothing written "
                                  "(pass --overwrite to replace it)")
        os.replace(tmp_path, path)
        _MUST_BE_NEW.discard(path.absolute())  # written: the command's own file now
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


# the umask, read once at import (reading it means setting it: not something to do while other threads make files)
_UMASK = os.umask(0)
os.umask(_UMASK)


def current_umask() -> int:
    """This process's umask as it was when facr was imported."""
    return _UMASK


def file_target(path: str | os.PathLike) -> Path:
    """``path`` as a file to write; an existing folder there is refused (:class:`FacrError`), not
    replaced. Commands that write one file call it before their work, :func:`atomic_path` again."""
    path = Path(path)
    if path.is_dir():
        raise FacrError(path, "is a directory, expected a file path")
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def dumps_json(obj: Any) -> str:
    """Canonical JSON text: ``indent=2, sort_keys=True``, a final newline, no NaN."""
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"


MAX_JSON_DEPTH = 64  # facr's own documents nest 5 levels at most; user metadata gets room, recursion does not


def read_user_text(path: Path, error: type, what: str, max_bytes: int) -> str:
    """The UTF-8 text of a file a user handed facr (``what``: "a YAML file", "a facr-graph file").

    Every problem is ``error(path, one line)``: no such file, a folder, over ``max_bytes`` (checked
    before anything is read), not UTF-8, unreadable.
    """
    try:
        size = path.stat().st_size
        if path.is_file() and size > max_bytes:
            raise error(path, f"{size:,} bytes, more than {what} may hold ({max_bytes:,})")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(path, "no such file") from None
    except IsADirectoryError:
        raise error(path, f"is a directory, not {what}") from None
    except UnicodeDecodeError as exc:
        raise error(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise error(path, f"cannot read: {exc.strerror or exc}") from None


class JSONTextError(ValueError):
    """JSON text :func:`loads_json` refuses; ``line`` is where the parser stopped (None: the whole text)."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


def loads_json(text: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON text strictly; every problem is a :class:`JSONTextError` (a ``ValueError``) with a
    one-line message.

    ``NaN`` / ``Infinity`` literals are refused (canonical JSON has none), and so is nesting deeper
    than ``max_depth`` (a file of ``[[[[...`` would otherwise raise ``RecursionError`` here or in
    whatever walks the document later).
    """
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise JSONTextError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", exc.lineno) from None
    except RecursionError:
        raise JSONTextError(f"not valid JSON: nested deeper than {max_depth} levels") from None
    stack = [(doc, 1)]
    while stack:  # iterative: the depth check itself must not recurse
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > max_depth:
                    raise JSONTextError(f"not valid JSON: nested deeper than {max_depth} levels")
                stack.append((child, depth + 1))
    return doc


def _reject_constant(token: str):
    raise JSONTextError(f"not valid JSON: {token} is not a JSON number")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as canonical JSON, atomically."""
    atomic_write_text(path, dumps_json(obj))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it), for a server or a launcher to bind."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when installed) torch so runs repeat."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch
    except ImportError:  # torch is a dependency, but the graph toolkit does not need it
        return
    torch.manual_seed(seed)


def box_overlap(a, b) -> tuple[float, float]:
    """(intersection over union, intersection over the smaller box) of two (x0, y0, x1, y1) boxes
    (extra entries, such as a detector's score, are ignored)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
    return inter / max(area_a + area_b - inter, 1e-9), inter / max(min(area_a, area_b), 1e-9)


def fresh_accelerator_state() -> None:
    """Let one process train several runs with different settings (tests, sweeps, notebooks).

    accelerate keeps its mixed-precision settings in a process-wide singleton that refuses a second
    ``Accelerator`` with other settings; this forgets them. The process group (``PartialState``)
    is kept, so a distributed launch is unaffected.
    """
    from accelerate.state import AcceleratorState

    if getattr(AcceleratorState, "_shared_state", None) and hasattr(AcceleratorState, "_reset_state"):
        AcceleratorState._reset_state(reset_partial_state=False)
