"""One writer per folder: a second process that would write the same run folder (or index) is refused at
once with one line naming the holder, instead of both finishing with files that disagree.

How: an exclusive ``flock`` on ``<folder>/.simtune.lock``. The kernel releases it when its holder exits,
however it exits (``kill -9`` included), so a lock file left behind never blocks anyone: the file is only
where the lock lives and where its holder writes who it is (pid, host, command, since when), for the
message a refused process prints. The lock is re-entrant within a process (``demo`` trains, evaluates and
indexes under one lock).

Distributed training runs one command as several processes (Lightning's launcher reruns it with
``LOCAL_RANK``/``NODE_RANK`` set; ``torchrun`` sets ``RANK``; SLURM sets ``SLURM_PROCID``): only global
rank 0 takes the lock, and the other ranks trust it, since they are one writer together (rank 0 writes
the run's results; see ``global_rank_is_zero``).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".simtune.lock"
# Where launchers put a process's rank: torchrun's global RANK, Lightning's per-machine LOCAL_RANK and
# NODE_RANK, SLURM's task number.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
_held: dict[Path, int] = {}  # folder -> how many times this process holds it
_guard = threading.Lock()


class FolderLockError(RuntimeError):
    """The folder's writer lock cannot be taken; the message is one line saying why."""


class FolderInUseError(FolderLockError):
    """Another process holds the folder's lock; the message names it."""


@contextmanager
def locked_folder(folder: str | Path, create: bool = True) -> Iterator[Path]:
    """Holds ``folder``'s writer lock for the block (``FolderInUseError`` at once if another process does).
    ``create=False``: a missing folder is a ``FileNotFoundError`` (and is not created). A folder this call
    created is removed again (with the parents it created) when the block fails having written nothing in
    it, so a command refused on its input leaves no empty run folder behind, e.g. under a mistyped name."""
    folder = Path(folder)
    made: list[Path] = []
    if create:
        made = [p for p in (folder, *folder.parents) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist or is not a folder")
    if not global_rank_is_zero():  # a distributed job's other processes: rank 0 holds the lock for them
        yield folder
        return
    key = folder.resolve()
    with _guard:
        if _held.get(key):
            _held[key] += 1
            descriptor = None
        else:
            try:
                descriptor = _acquire(key)
            except BaseException:
                _remove_if_unused(made, held=False)
                raise
            _held[key] = 1
    failed = True
    try:
        yield folder
        failed = False
    finally:
        with _guard:
            _held[key] -= 1
            if not _held[key]:
                del _held[key]
                if failed and descriptor is not None:
                    _remove_if_unused(made, held=True)
                if descriptor is not None:
                    _release(descriptor)


def global_rank_is_zero() -> bool:
    """Is this process rank 0 of a distributed job (or in none)? Yes when every rank variable a launcher set
    is 0: Lightning's ``LOCAL_RANK`` and ``NODE_RANK`` are both 0 only on global rank 0, and so on."""
    for name in RANK_VARIABLES:
        value = os.environ.get(name, "0").strip()
        if value.isdigit() and int(value) != 0:
            return False
    return True


def holder(folder: str | Path) -> str | None:
    """Who holds ``folder``'s lock, as the refusal says it; None when nobody does."""
    path = Path(folder) / LOCK_FILE
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _describe(path)
    finally:
        os.close(descriptor)  # closing also drops the shared lock, if it was granted
    return None


def _acquire(folder: Path) -> int:
    path = folder / LOCK_FILE
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as error:
        if error.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        raise FolderLockError(f"{folder} cannot be written ({error.strerror}): use a folder you can write") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise FolderInUseError(
            f"{folder} is in use by {_describe(path)}: wait for it to finish (or stop it), or use another folder"
        ) from None
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300] if sys.argv else "python",
        "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(me).encode(), 0)
    except OSError:  # a full disk: the lock holds all the same, only the refusal's details are lost
        pass
    return descriptor


def _release(descriptor: int) -> None:
    try:
        os.ftruncate(descriptor, 0)
    except OSError:
        pass
    os.close(descriptor)  # releases the flock


def _remove_if_unused(made: list[Path], held: bool) -> None:
    """Removes the folders in ``made`` (the locked folder, then the parents made for it) while they hold
    nothing but, where ``held``, the lock file; its lock is still held, so no other writer is inside."""
    if not made:
        return
    try:
        if held and [p.name for p in made[0].iterdir()] != [LOCK_FILE]:
            return
        if held:
            (made[0] / LOCK_FILE).unlink()
        for folder in made:
            folder.rmdir()  # fails, and stops, at the first that is not empty
    except OSError:
        pass


def _describe(path: Path) -> str:
    try:
        who = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        who = {}
    if not who:
        return "another process"
    return f"pid {who.get('pid')} on {who.get('host')} (`{who.get('command')}`, since {who.get('since')})"
