"""Output folders: what facr writes it marks, and what it did not write it never replaces.

Every folder a facr command writes (an audit report, a synthetic dataset, a training run, a
checkpoint, an imported backbone, an experiment) carries :data:`MARKER`, ``.facr-output.json``:
the kind of output, facr's version, when and by which command. Before facr writes to a folder
that exists, :func:`check_target` decides:

* empty (or missing): fine;
* facr's marker of the same kind: replaced only with ``overwrite`` (``--overwrite``);
* anything else, a user's files or another kind of facr output: never replaced, not even with
  ``--overwrite``;
* the folder is, holds or lies inside an input being read (the data, the model): refused.

A writer holds a lock beside the folder (``.<name>.facr-lock``, holding its pid) for its whole
run, so two writers to one folder cannot both succeed. A lock whose process is gone is stale: the
next writer takes it over and removes the temp folders the killed writer left (``.<name>.facr-tmp-
<pid>-*``), saying so. While the lock is held, SIGTERM raises ``SystemExit`` so the temp folder is
removed on that exit too (only SIGKILL leaves one, for the next writer to clean).

:func:`output_dir` builds a folder beside its target and swaps it in at the end, after checking
the target again under the lock (a folder that appeared meanwhile is not deleted); the old folder
of the same kind is moved aside and deleted only once the new one is in place. :func:`run_dir`
claims a folder that a long job writes in place (a training run, an experiment): ``resume``
continues one of the same kind, ``overwrite`` replaces one whole. The old one is moved aside before the job
starts and deleted only when the job ends well; a job that fails or is stopped (an exception, Ctrl-C,
SIGTERM) is removed and the old folder put back, so a refusal found only once the data are read loses nothing.
After a ``kill -9`` the next writer of the folder puts it back.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from facr.errors import FacrError
from facr.utils import current_umask, loads_json

MARKER = ".facr-output.json"

RUN_KINDS = ("reasoner-run", "verbalizer-run")  # training runs: `--resume` continues one

# Folders written before facr marked its outputs: ``resume`` adopts one of these kinds when it holds
# all of these files (a run with its training state, a finished experiment, EmoLA's inputs). Nothing is
# ever replaced on this evidence: only continued.
UNMARKED = {"reasoner-run": ("config.json", "state/position.json"), "experiment": ("results.json",),
            "emola-work": ("data/index.json",)}

_HELD: set[str] = set()  # lock files this process holds (a stale lock may carry a reused pid: ours)
_HELD_GUARD = threading.Lock()


class OutputError(FacrError):
    """An output folder facr will not write: not facr's, another kind, an input, or not overwritable."""


class OutputBusy(OutputError):
    """An output folder another facr process (or thread) is writing right now."""


# ---------------------------------------------------------------------------- the marker
def read_marker(folder: str | os.PathLike) -> dict | None:
    """The marker of ``folder`` (``{"kind", "facr_version", "created", "command"}``), or None when
    it has none or an unreadable one."""
    try:
        marker = loads_json((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and isinstance(marker.get("kind"), str) else None


def write_marker(folder: str | os.PathLike, kind: str) -> None:
    """Mark ``folder`` as facr's output of ``kind`` (written by this process's command, now)."""
    from facr import __version__
    from facr.utils import write_json

    argv = [os.path.basename(sys.argv[0]) or "python", *sys.argv[1:]] if sys.argv else []
    write_json(Path(folder) / MARKER, {"kind": kind, "facr_version": __version__, "command": shlex.join(argv),
                                       "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})


# ----------------------------------------------------------------------------- the rules
def _input_clash(target: Path, inputs: Iterable[str | os.PathLike | None], inside_ok: bool = False) -> str | None:
    """How ``target`` overlaps an existing input path, as words, or None (``inside_ok``: lying inside an
    input folder is no clash)."""
    t = target.resolve()
    for item in inputs:
        if item is None or str(item) == "" or not Path(item).exists():
            continue  # a registry name (emola, smollm2-135m), not a path
        r = Path(item).resolve()
        if t == r:
            return f"is the input {item} itself"
        if r in t.parents and not inside_ok:
            return f"lies inside the input {item}"
        if t in r.parents:
            return f"holds the input {item}"
    return None


def check_target(path: str | os.PathLike, kind: str, *, overwrite: bool = False, resume: bool = False,
                 inputs: Iterable[str | os.PathLike | None] = ()) -> None:
    """Raise :class:`OutputError` unless facr may write its ``kind`` of output to folder ``path``
    (the rules of the module docstring). ``resume``: the job continues the output already there,
    which must be facr's of the same kind (or a folder written before markers, see :data:`UNMARKED`)."""
    path = Path(path)
    clash = _input_clash(path, inputs)
    if clash:
        raise OutputError(path, f"{clash}: facr never writes over what it reads; choose another --out")
    if not path.exists():
        return
    if not path.is_dir():
        raise OutputError(path, "exists and is not a folder")
    if _holds_nothing(path):
        return
    marker = read_marker(path)
    if marker is None:
        legacy = UNMARKED.get(kind)
        if resume and legacy and all((path / f).exists() for f in legacy):
            return
        raise OutputError(path, f"is not empty and facr did not write it (no {MARKER}): facr never replaces such a "
                                "folder, not even with --overwrite; choose another --out")
    if marker["kind"] != kind:
        raise OutputError(path, f"holds facr output of another kind ({marker['kind']}, not {kind}): facr never "
                                "replaces it, not even with --overwrite; choose another --out")
    if not (resume or overwrite):
        how = "--resume to continue it, or --overwrite to replace it" if kind in RUN_KINDS else \
            "--overwrite to replace it"
        raise OutputError(path, f"already holds a facr {kind} output ({marker.get('created', 'undated')}); "
                                f"pass {how}")


def output_file(path: str | os.PathLike, *, overwrite: bool = False,
                inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Check a command's one-file ``--out`` before its work (the file itself is written later, through
    :func:`facr.utils.atomic_path`): not a folder, not one of ``inputs`` nor a file already inside one
    (a new file beside a model's or a dataset's own files is fine), and an existing file only with
    ``overwrite`` — a file carries no marker, so facr cannot tell its own from a user's.
    :class:`OutputError` otherwise."""
    from facr.utils import expect_new, file_target

    target = file_target(path)
    clash = _input_clash(target, inputs, inside_ok=not target.exists())
    if clash:
        raise OutputError(target, f"{clash}: facr never writes over what it reads; choose another --out")
    if target.exists() and not overwrite:
        raise OutputError(target, "already exists; pass --overwrite to replace it")
    expect_new(target, not overwrite)  # without --overwrite, a file that appears meanwhile is not replaced either
    return target


def _holds_nothing(path: Path) -> bool:
    """Empty, or nothing but the marker (a job that stopped before writing anything)."""
    return all(p.name == MARKER for p in path.iterdir())


# ------------------------------------------------------------------ lock and temp folders
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _lock_owner(lock: Path) -> tuple[int | None, str | None]:
    """(pid, host) written in ``lock``; (None, None) while it is being written or unreadable."""
    try:
        text = lock.read_text(encoding="utf-8").split()
        return int(text[0]), (text[1] if len(text) > 1 else None)
    except (OSError, ValueError, IndexError):
        return None, None


def _is_stale(lock: Path) -> bool:
    pid, host = _lock_owner(lock)
    if pid is None:  # created a moment ago and not written yet, unless it is old
        try:
            return time.time() - lock.stat().st_mtime > 30
        except OSError:
            return True
    if host is not None and host != socket.gethostname():
        return False  # another machine's process: its liveness cannot be checked from here
    if pid == os.getpid():
        with _HELD_GUARD:
            return str(lock) not in _HELD  # our pid but not our lock: a killed process that had our pid
    return not _alive(pid)


def _absolute(path: str | os.PathLike) -> Path:
    """``path`` made absolute without following links (``out/.`` has a name; a link stays a link)."""
    return Path(os.path.abspath(path))


def _lock_path(path: Path) -> Path:
    return path.parent / f".{path.name}.facr-lock"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold ``.<name>.facr-lock`` beside ``path`` (O_CREAT | O_EXCL, holding our pid and host)."""
    lock = _lock_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            if not _is_stale(lock):
                pid, _ = _lock_owner(lock)
                who = ("this process" if pid == os.getpid() else
                       f"another facr process{'' if pid is None else f' (pid {pid})'}")
                raise OutputBusy(path, f"{who} is writing it right now (lock {lock.name}); wait for it to finish") \
                    from None
            # a killed writer's lock; a race with another taker is settled by O_EXCL on the next try
            lock.unlink(missing_ok=True)
    else:
        raise OutputBusy(path, f"cannot take the lock {lock.name}")
    with _HELD_GUARD:
        _HELD.add(str(lock))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {socket.gethostname()}\n")
        _remove_stale_temps(path)
        yield
    finally:
        with _HELD_GUARD:
            _HELD.discard(str(lock))
        lock.unlink(missing_ok=True)


def _temp_name(path: Path, what: str) -> Path:
    """A fresh name ``.<name>.facr-<what>-<pid>-<random>`` beside ``path`` (created as a folder)."""
    return Path(tempfile.mkdtemp(prefix=f".{path.name}.facr-{what}-{os.getpid()}-", dir=path.parent))


def _remove(path: Path) -> None:
    if path.is_symlink():
        path.unlink()  # a link is replaced, what it points to is not facr's to delete
    else:
        shutil.rmtree(path, ignore_errors=True)


def _remove_stale_temps(path: Path) -> None:
    """Clean up after a killed writer of ``path`` (called under the lock): remove its temp folders, and
    put back the output a killed ``run_dir(overwrite=True)`` job was replacing (``kept``)."""
    for p in path.parent.glob(f".{glob.escape(path.name)}.facr-*-*-*"):
        what, pid = p.name[len(path.name) + 7:].split("-", 2)[:2]
        # under the lock no live writer of ``path`` is left; our own pid here is a killed process's reused one
        if not (pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid)))):
            continue
        if what in ("tmp", "old"):
            _remove(p)
            print(f"facr: removed {p}, left by an interrupted facr run (pid {pid})", file=sys.stderr)
        elif what == "kept":  # the replacement never ended well: its unfinished run goes, the old one comes back
            if path.exists() or path.is_symlink():
                _remove(path)
            os.replace(p, path)
            print(f"facr: put back {path}, which an interrupted --overwrite run (pid {pid}) was replacing",
                  file=sys.stderr)


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises ``SystemExit(143)`` inside the block, so ``finally`` clauses run (main thread only,
    and only where nothing else handles SIGTERM already)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


# ------------------------------------------------------------------------- the two writers
@contextlib.contextmanager
def output_dir(path: str | os.PathLike, kind: str, *, overwrite: bool = False,
               inputs: Iterable[str | os.PathLike | None] = ()) -> Iterator[Path]:
    """Yield a temp folder beside ``path`` to write facr's ``kind`` of output into; when the block
    ends without an exception it takes ``path``'s place atomically, marked.

    ``path`` is checked (:func:`check_target`) before the block and again, under the lock, just before
    the swap; an old folder of the same kind is moved aside and deleted only after the new one is in
    place. The temp folder is removed on any exit. Raises :class:`OutputError` (or :class:`OutputBusy`).
    """
    path, inputs = _absolute(path), list(inputs)
    check_target(path, kind, overwrite=overwrite, inputs=inputs)
    with _locked(path), _sigterm_raises():
        tmp = _temp_name(path, "tmp")
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700: the output gets a new folder's permissions
        try:
            yield tmp
            write_marker(tmp, kind)
            check_target(path, kind, overwrite=overwrite, inputs=inputs)  # what may have appeared meanwhile
            _swap(tmp, path)
        finally:
            if tmp.exists():
                _remove(tmp)


def _swap(tmp: Path, path: Path) -> None:
    old = None
    if path.exists() or path.is_symlink():
        old = _temp_name(path, "old")
        os.replace(path, old)  # onto the empty folder mkdtemp made: a rename, atomic
    try:
        os.replace(tmp, path)
    except OSError as exc:  # something took the name between the moves: put ours back, keep theirs
        if old is not None and not path.exists():
            os.replace(old, path)
        raise OutputError(path,
                          f"changed while facr was replacing it ({exc.strerror}); nothing was replaced") from None
    if old is not None:
        _remove(old)


@contextlib.contextmanager
def run_dir(path: str | os.PathLike, kind: str, *, overwrite: bool = False, resume: bool = False,
            inputs: Iterable[str | os.PathLike | None] = ()) -> Iterator[Path]:
    """Claim folder ``path`` for a long job that writes facr's ``kind`` of output in place (a training
    run, an experiment) and yield it, marked, for the whole job.

    ``resume`` continues facr's output of the same kind already there. Otherwise the folder must be
    empty, or hold that kind of output and ``overwrite`` be set: then the old output is moved aside
    (``.<name>.facr-kept-<pid>-*``) and the job starts in a new folder, so a folder never mixes two runs.
    The old output is deleted when the block ends without an exception; on any exception (a refusal,
    Ctrl-C, SIGTERM) the new folder is removed and the old one put back. Raises :class:`OutputError`.
    """
    path, inputs = _absolute(path), list(inputs)
    if resume and overwrite:
        raise OutputError(path, "--resume continues the run in this folder and --overwrite replaces it: pass one")
    check_target(path, kind, overwrite=overwrite, resume=resume, inputs=inputs)
    with _locked(path), _sigterm_raises():
        check_target(path, kind, overwrite=overwrite, resume=resume, inputs=inputs)  # again, under the lock
        old = None
        if not resume and path.exists() and not _holds_nothing(path):
            old = _temp_name(path, "kept")
            os.replace(path, old)  # kept until the job ends well (a killed job's: put back by the next writer)
        created = not path.exists()
        path.mkdir(parents=True, exist_ok=True)
        if (read_marker(path) or {}).get("kind") != kind:
            write_marker(path, kind)
        try:
            yield path
        except BaseException:
            if old is not None:  # the replacement did not finish: the old output goes back in its place
                _remove(path)
                os.replace(old, path)  # said by nothing more than the error itself: a refusal stays one line
            elif path.is_dir() and _holds_nothing(path):  # stopped before writing anything: no claimed empty folder
                (path / MARKER).unlink(missing_ok=True)
                if created:
                    path.rmdir()
            raise
        if old is not None:
            _remove(old)


def wait_released(path: str | os.PathLike, timeout: float = 600.0) -> None:
    """Wait until no live writer holds ``path``'s lock (another process importing a shared cache)."""
    lock = _lock_path(_absolute(path))
    deadline = time.monotonic() + timeout
    while lock.exists() and not _is_stale(lock):
        if time.monotonic() > deadline:
            raise OutputBusy(path, f"still locked by another facr process after {timeout:.0f} s ({lock.name})")
        time.sleep(0.2)


__all__ = ["MARKER", "OutputBusy", "OutputError", "check_target", "output_dir", "read_marker", "run_dir",
           "wait_released", "write_marker"]
