"""Process hygiene: workers that die with their parent, one owner per folder, temp files.

Tools for code that runs worker processes and writes into a folder (used by
:func:`deepreservoir.sweep.run_sweep` and :mod:`deepreservoir.cluster`):

* :func:`die_with_parent` makes a worker process exit when its parent dies,
  even by SIGKILL (on Linux the kernel kills it, ``PR_SET_PDEATHSIG``;
  everywhere a daemon thread polls ``os.getppid()``). The local Dask workers
  of :class:`deepreservoir.cluster.DaskPool` call it at start-up.
* :class:`FolderLock` is a lock file created with ``O_CREAT | O_EXCL`` that
  holds its owner's pid, host and process start time. A lock whose process is
  gone (on this host) is stale and is taken over.
* :func:`temp_path`, :func:`write_atomic` and :func:`remove_stale_temps`:
  temporary files carry their writer's host and pid, so a clean-up removes
  only those whose writer is gone, never a live run's.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepreservoir.errors import ParameterError

__all__ = ["FolderLock", "die_with_parent", "pid_alive", "remove_stale_temps", "temp_path",
           "write_atomic"]

_SEP = "~"  # separates the target's name, the writer's host and pid in a temp name


def _host() -> str:
    return socket.gethostname().replace(_SEP, "-").replace("/", "-") or "localhost"


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """``(state, start time in clock ticks since boot)`` of ``pid`` from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (fields[0], fields[19]) if len(fields) > 19 else None


def pid_alive(pid: int, start: str | None = None) -> bool:
    """Whether process ``pid`` of this host runs (a zombie does not).

    ``start``: its start time as recorded when it was alive (Linux); a
    different start time means the pid was reused by another process.
    On Windows this cannot be checked safely and every pid counts as alive.
    """
    if pid <= 0:
        return False
    if sys.platform == "win32":  # pragma: no cover - os.kill(pid, 0) sends Ctrl-C there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user
    stat = _proc_stat(pid)
    if stat is None:
        return True
    return stat[0] not in ("Z", "X") and (start is None or stat[1] == start)


# ------------------------------------------------------------ parent death
# Code run with exec() (it imports nothing of deepreservoir, so it can also serve as a bare
# initializer). PDEATHSIG follows the thread that spawned the process, not the whole parent:
# that thread must live as long as the worker. Globals: parent_pid, poll.
_DIE_WITH_PARENT = """
import os, signal, sys, threading, time
if sys.platform.startswith("linux"):
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PDEATHSIG
    except (OSError, AttributeError):
        pass
if os.getppid() != parent_pid:
    os._exit(1)
def _watch_parent():
    while True:
        time.sleep(poll)
        if os.getppid() != parent_pid:
            os._exit(1)
threading.Thread(target=_watch_parent, daemon=True, name="deepreservoir-parent-watchdog").start()
"""


def die_with_parent(parent_pid: int, *, poll: float = 1.0) -> None:
    """Make this process exit when process ``parent_pid`` (its parent) dies.

    On Linux the kernel sends SIGKILL at the parent's death
    (``prctl(PR_SET_PDEATHSIG)``); on every platform a daemon thread checks
    ``os.getppid()`` every ``poll`` seconds. A parent already gone makes this
    process exit at once.
    """
    exec(_DIE_WITH_PARENT, {"parent_pid": parent_pid, "poll": poll})


# ------------------------------------------------------------- temp files
def temp_path(path: str | os.PathLike) -> Path:
    """A hidden temporary name next to ``path`` naming this host and pid."""
    path = Path(path)
    return path.with_name(f".{path.name}{_SEP}{_host()}{_SEP}{os.getpid()}.tmp")


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def write_atomic(path: str | os.PathLike, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp)``, then move ``tmp`` onto ``path``: ``path`` is whole or untouched."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_folder(path.parent)


def _temp_owner(tmp: Path) -> tuple[str | None, int | None]:
    stem = tmp.name[1:-len(".tmp")]
    parts = stem.rsplit(_SEP, 2)
    if len(parts) == 3 and parts[2].isdigit():
        return parts[1], int(parts[2])
    name, _, pid = stem.rpartition(".")  # older releases: .<name>.<pid>.tmp
    return (_host(), int(pid)) if name and pid.isdigit() else (None, None)


def remove_stale_temps(folder: str | os.PathLike, pattern: str = ".*.tmp", *,
                       unknown_after: float = 3600.0) -> list[Path]:
    """Remove the temporary files of ``folder`` whose writer is gone.

    A temp file of this host is stale when its pid no longer runs; one of
    another host, or without a pid in its name, when it has not changed for
    ``unknown_after`` seconds. Returns the files removed.
    """
    removed = []
    for tmp in Path(folder).glob(pattern):
        host, pid = _temp_owner(tmp)
        try:
            stale = (not pid_alive(pid)) if host == _host() and pid is not None \
                else time.time() - tmp.stat().st_mtime > unknown_after
            if stale:
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:
            continue
    return removed


# ------------------------------------------------------------------- lock
class FolderLock:
    """One live owner for a folder: the lock file ``folder/name``.

    Parameters
    ----------
    folder : path
        The folder (created by :meth:`acquire` if missing).
    name : str
        The lock file's name.
    what : str
        Who is refused, for the error (e.g. ``"The 'out' parameter of run_sweep"``).
    hint : str
        How to get past a live owner, for the error.

    Attributes
    ----------
    path : Path
        The lock file.
    took_over : str or None
        After :meth:`acquire`: a sentence naming the owner of the stale lock
        taken over, if any.
    """

    def __init__(self, folder: str | os.PathLike, name: str = "sweep.lock", *,
                 what: str = "The folder", hint: str = "wait for that run to end"):
        self.path = Path(folder) / name
        self.what, self.hint = what, hint
        self.took_over: str | None = None
        self._text: str | None = None

    def _create(self) -> bool:
        pid = os.getpid()
        stat = _proc_stat(pid)
        text = json.dumps({"pid": pid, "host": _host(), "start": stat[1] if stat else None,
                           "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                           "token": uuid.uuid4().hex})
        try:
            handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(handle, text.encode())
            os.fsync(handle)
        except BaseException:
            os.close(handle)
            self.path.unlink(missing_ok=True)  # no empty lock left behind (disk full, ...)
            raise
        os.close(handle)
        self._text = text
        return True

    def _take_over(self, seen: str) -> bool:
        """Move the stale lock aside; put it back if it is not the one judged stale."""
        aside = self.path.with_name(f".{self.path.name}{_SEP}{_host()}{_SEP}{os.getpid()}.tmp")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        try:
            moved = aside.read_text()
        except OSError:
            moved = None
        if moved != seen:  # another process took it over meanwhile: restore its lock
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
        aside.unlink(missing_ok=True)
        return moved == seen

    def acquire(self) -> FolderLock:
        """Create the folder if needed and take the lock, taking over a stale one.

        Raises
        ------
        ParameterError
            A live process (or one on another host) holds the lock, or the
            folder cannot be created or written.
        """
        try:
            return self._acquire()
        except OSError as error:
            raise ParameterError(
                f"{self.what}: {str(self.path.parent)!r} could not be created or locked "
                f"({error.strerror or error}); expected a writable folder.") from None

    def _acquire(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        unreadable_since = None
        for _ in range(200):
            if self._create():
                return self
            try:
                seen = self.path.read_text()
            except FileNotFoundError:
                continue
            try:
                owner = json.loads(seen)
                pid, host = int(owner["pid"]), str(owner["host"])
            except (ValueError, KeyError, TypeError):
                # being written right now, or garbage: wait a little before taking it over
                unreadable_since = unreadable_since or time.monotonic()
                if time.monotonic() - unreadable_since < 2:
                    time.sleep(0.1)
                    continue
                owner, pid, host = {}, -1, _host()
            if host != _host() or pid_alive(pid, owner.get("start")):
                who = "the live process" if host == _host() else "the process"
                where = "" if host == _host() else " (another host: its state cannot be checked)"
                raise ParameterError(
                    f"{self.what} names a folder in use: {str(self.path.parent)!r} is locked by "
                    f"{who} pid {pid} on host {host}{where}, since "
                    f"{owner.get('since', '?')}. Expected a folder no other live run writes "
                    f"to: {self.hint}; if that run is over, delete {str(self.path)!r}.")
            if self._take_over(seen):
                self.took_over = (f"took over the stale lock of {str(self.path.parent)!r}: its "
                                  f"owner (pid {pid} on {host}, since "
                                  f"{owner.get('since', '?')}) is gone.")
        raise ParameterError(f"{self.what}: could not take the lock {str(self.path)!r}; "
                             f"expected it to be free or stale. Other processes keep taking it.")

    def release(self) -> None:
        """Remove the lock file if it is still this owner's."""
        if self._text is None:
            return
        with contextlib.suppress(OSError):
            if self.path.read_text() == self._text:
                self.path.unlink()
        self._text = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()
