"""Atomic writes, one way for the whole project: whenever a writer dies, the target holds the old content
or the new, never a half-written file, and (on Linux) a replaced folder is never missing.

How: everything is written under a staging name beside its target, ``.<name>.staging-<pid>-<random>`` in
the same folder (so the last step is a rename within one filesystem), synced to disk, then renamed over
the target. A file uses ``os.replace``. A folder is swapped with the target in one step (Linux
``renameat2(RENAME_EXCHANGE)``); the staging name then holds the old folder, which is deleted. Where that
call is missing, the old folder is first renamed to ``.<name>.retired-<pid>-<random>``: a crash between the
two renames leaves the target missing until the clean-up below renames it back.

Permissions: what ``open`` would give under the process's umask (``0o666 & ~umask`` for files), whatever
the writer chose: some (safetensors) create files ``0o600``, which another user of a shared model or cache
could not read.

A full disk (``ENOSPC``, ``EDQUOT``; some writers report it only as an I/O failure while the device has
no space left) is a ``NoSpaceError`` naming the folder; the target keeps its old content.

Leftovers of killed writers, one rule: a staging or retired entry is stale when its process (``<pid>``)
no longer runs on this machine, or when it is older than ``STALE_AFTER_S`` (its pid may have been
reused). Stale entries are removed, or a retired folder whose target is missing is put back, by the next
write into the same folder: every folder replace, and the first file write of each process there (files
are written by the thousand, so a folder is scanned once per process, not once per file).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STALE_AFTER_S = 24 * 3600  # longer than any single write takes
_LEFTOVER = re.compile(r"^\.(?P<target>.+)\.(?P<kind>staging|retired)-(?P<pid>\d+)-[0-9a-f]{8}$")
_scanned_folders: set[Path] = set()
_NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
NEARLY_FULL_BYTES = 64 * 1024  # a failed write with less than this left on the device is taken for a full disk


class NoSpaceError(OSError):
    """The device holding a folder ran out of space; the message is one line naming the folder."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def no_space_error(folder: str | Path, error: BaseException | None = None) -> NoSpaceError | None:
    """A ``NoSpaceError`` for ``folder`` when ``error`` (or any error it was raised from) is a full-disk
    error, or, whatever ``error`` is, when ``folder``'s device has (almost) no space left; else None."""
    chain, seen = error, set()
    while chain is not None and id(chain) not in seen:
        seen.add(id(chain))
        if isinstance(chain, NoSpaceError):
            return chain
        if isinstance(chain, OSError) and chain.errno in _NO_SPACE_ERRNOS or "No space left on device" in str(chain):
            break
        chain = chain.__cause__ or chain.__context__
    else:
        if not _nearly_full(Path(folder)):
            return None
    return NoSpaceError(
        errno.ENOSPC,
        f"no space left on the device holding {folder}: free some space there and run again "
        "(what was there before is unchanged)",
        str(folder),
    )


@contextmanager
def _full_disk_named(folder: Path) -> Iterator[None]:
    """A failure inside that is a full disk becomes the ``NoSpaceError`` naming ``folder``; others pass as they are."""
    try:
        yield
    except Exception as error:
        full = no_space_error(folder, error)
        if full is None:
            raise
        raise full from error


def _nearly_full(folder: Path) -> bool:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    free = stats.f_bfree if os.geteuid() == 0 else stats.f_bavail  # root may use the reserved blocks
    return free * stats.f_frsize < NEARLY_FULL_BYTES


def file_mode() -> int:
    """``0o666`` less the process's umask: the mode ``open`` gives a new file."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it, briefly
    os.umask(mask)
    return 0o666 & ~mask


def write_bytes(path: str | Path, data: bytes, durable: bool = True) -> None:
    """Writes ``data`` to ``path`` atomically (parents are created).

    ``durable=False`` skips the fsync: still atomic if the process dies, but after a power loss the file
    may be empty; for outputs that are cheap to recreate and written by the thousand (image crops).
    """
    with staged_file(path, durable=durable) as staging:
        staging.write_bytes(data)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    write_bytes(path, text.encode(encoding))


def write_json(path: str | Path, content: Any, indent: int | None = 2, sort_keys: bool = False) -> None:
    write_text(path, json.dumps(content, indent=indent, sort_keys=sort_keys) + "\n")


@contextmanager
def staged_file(path: str | Path, durable: bool = True) -> Iterator[Path]:
    """Yields a staging path for a writer that wants a file name (PIL, torch.onnx, safetensors); when the
    block ends without an exception the file becomes ``path``, otherwise it is deleted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent.resolve() not in _scanned_folders:
        clean_leftovers(path.parent)
        _scanned_folders.add(path.parent.resolve())
    staging = _staging_name(path, "staging")
    try:
        with _full_disk_named(path.parent):  # asked before the staging file frees its space
            yield staging
            _set_mode(staging, file_mode())
            if durable:
                _fsync(staging)
            os.replace(staging, path)
            if durable:
                _fsync(path.parent)
    finally:
        staging.unlink(missing_ok=True)


@contextmanager
def replace_directory(path: str | Path) -> Iterator[Path]:
    """Yields an empty staging folder beside ``path``; when the block ends without an exception it replaces
    ``path`` (created or swapped in whole), otherwise it is deleted and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path.parent)
    staging = _staging_name(path, "staging")
    staging.mkdir()
    try:
        with _full_disk_named(path.parent):
            yield staging
            swap_in_directory(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # after a swap this is the old folder


def swap_in_directory(staging: str | Path, path: str | Path) -> None:
    """Syncs the finished folder ``staging`` (beside ``path``, on the same filesystem) and swaps it in for
    ``path`` in one step; ``staging`` then holds the old folder (or nothing), for the caller to delete.
    For writers whose staging folder must outlive their process (a resumable write names its own)."""
    staging, path = Path(staging), Path(path)
    mode = file_mode()
    for entry in sorted(staging.rglob("*"), reverse=True):  # files before the folders holding them
        if not entry.is_symlink():
            if entry.is_file():
                _set_mode(entry, mode)
            _fsync(entry)
    _fsync(staging)
    _swap_in(staging, path)
    _fsync(path.parent)


def clean_leftovers(folder: str | Path) -> list[Path]:
    """Applies the leftover rule (see the module docstring) to ``folder``; returns what it removed or restored."""
    folder = Path(folder)
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    handled = []
    for entry in entries:
        match = _LEFTOVER.match(entry.name)
        if match is None or not _is_stale(int(match["pid"]), entry):
            continue
        leftover, target = Path(entry.path), folder / match["target"]
        try:
            if match["kind"] == "retired" and not os.path.lexists(target):
                os.rename(leftover, target)  # a writer died between its two renames: the old one goes back
            elif entry.is_dir(follow_symlinks=False):
                shutil.rmtree(leftover)
            else:
                leftover.unlink()
        except FileNotFoundError:  # another process cleaned it first
            continue
        handled.append(leftover)
    return handled


def _staging_name(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def _is_stale(pid: int, entry: os.DirEntry) -> bool:
    try:
        age = time.time() - entry.stat(follow_symlinks=False).st_mtime
    except FileNotFoundError:
        return False
    return age > STALE_AFTER_S or not _process_exists(pid)


def _process_exists(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _swap_in(staging: Path, path: Path) -> None:
    if not os.path.lexists(path):
        os.rename(staging, path)
    elif not _exchange(staging, path):
        retired = _staging_name(path, "retired")
        os.rename(path, retired)
        os.rename(staging, path)
        shutil.rmtree(retired)


def _exchange(first: Path, second: Path) -> bool:
    """Swaps two paths in one atomic step; False where the system cannot (then nothing happened)."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(error, os.strerror(error), str(second))


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        function.restype = ctypes.c_int
    return function


def _set_mode(path: Path, mode: int) -> None:
    if path.stat().st_mode & 0o777 != mode:
        os.chmod(path, mode)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
