"""The embedded index's files on disk: a manifest verified on open, sparse-aware copies, and a private
view that lets the engine open an index it must not write to.

Why a view: the engine opens every segment file for writing and touches several of them on load (its
config, segment headers, flag files) even when only searched, so opening in place fails on a read-only
folder and, on a full disk, dies with a bus error when a memory-mapped page of a sparse file cannot be
backed. The view is a scratch folder in the system temporary folder where the files the engine only ever
reads (vectors, HNSW links, immutable id maps and payload indexes: nearly all the bytes) are symlinks to
the index, and the small files it writes are sparse copies. The index folder is never written; a reader
takes a shared lock on it, so a writer can tell that it is in use.

Why the manifest: the engine answers from whatever files it finds (a segment without its vectors
searches as empty, one without payloads returns hits without fields), so every file's size and a
checksum of its content, recorded when the index was built, are compared before the engine sees them.
The checksum is CRC-32 per 1 MiB block with its offset, skipping all-zero blocks (so sparse and dense
copies of one file agree and holes cost nothing to read): it catches accidental damage, as storage
checksums do; a deliberate edit could rewrite the manifest beside it just as well.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Any

from simtune.search.errors import IndexUnavailableError

BLOCK = 2**20
_ZEROS = bytes(BLOCK)
VIEW_PREFIX = "simtune-index-view-"
# Files the engine maps read-only: optimized segments' vectors, HNSW graph, id mapping and payload indexes.
_READ_ONLY_NAMES = {"matrix.dat", "graph.bin", "links.bin", "links_compressed.bin", "id_tracker.mappings"}


def _engine_reads_only(relative: Path) -> bool:
    return relative.name in _READ_ONLY_NAMES or ("payload_index" in relative.parts and relative.suffix == ".bin")


def content_checksum(path: Path) -> str:
    """CRC-32 over (offset, block) of every 1 MiB block that holds a non-zero byte."""
    checksum = 0
    with open(path, "rb") as file:
        descriptor = file.fileno()
        size = os.fstat(descriptor).st_size
        offset = 0
        while offset < size:
            try:
                offset = os.lseek(descriptor, offset, os.SEEK_DATA) // BLOCK * BLOCK
            except OSError as error:
                if error.errno == errno.ENXIO:  # only a hole remains
                    break
                if error.errno != errno.EINVAL:  # EINVAL: the filesystem cannot tell holes apart
                    raise
            block = os.pread(descriptor, BLOCK, offset)
            if block != _ZEROS[: len(block)]:
                checksum = zlib.crc32(block, zlib.crc32(offset.to_bytes(8, "little"), checksum))
            offset += BLOCK
    return f"{checksum:08x}"


def manifest(root: Path) -> dict[str, dict[str, Any]]:
    """Every file under ``root`` (relative POSIX path) with its size and content checksum."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            files[path.relative_to(root).as_posix()] = {"size": path.stat().st_size, "crc32": content_checksum(path)}
    return dict(sorted(files.items()))


def manifest_problem(root: Path, recorded: dict[str, dict[str, Any]], contents: bool = True) -> str | None:
    """What differs between the files under ``root`` and ``recorded`` (the first difference found), or None.
    ``contents=False`` compares names and sizes only (a few hundred ``stat`` calls)."""
    present = {Path(folder, name).relative_to(root).as_posix() for folder, _, names in os.walk(root) for name in names}
    missing = sorted(recorded.keys() - present)
    if missing:
        more = f" (and {len(missing) - 1} more files)" if len(missing) > 1 else ""
        return f"{root.name}/{missing[0]} is missing{more}"
    extra = [f"{root.name}/{name}" for name in sorted(present - recorded.keys())]
    if extra:
        return f"it holds files it was not built with ({', '.join(extra[:3])}{', ...' if len(extra) > 3 else ''})"
    for name, expected in recorded.items():
        size = (root / name).stat().st_size
        if size != expected["size"]:
            return f"{root.name}/{name} is {size:,} bytes, not the {expected['size']:,} written"
    if contents:
        for name, expected in recorded.items():
            if content_checksum(root / name) != expected["crc32"]:
                return f"{root.name}/{name} was changed after the index was built (its checksum differs)"
    return None


def copy_sparse(source: Path, target: Path) -> None:
    """Copies a file's data regions only, so the holes of the engine's preallocated files stay holes
    (``shutil.copyfile`` writes them out as zeros: an index would grow tenfold on each copy)."""
    with open(source, "rb") as reader, open(target, "wb") as writer:
        size = os.fstat(reader.fileno()).st_size
        offset = 0
        while offset < size:
            try:
                offset = os.lseek(reader.fileno(), offset, os.SEEK_DATA)
                end = os.lseek(reader.fileno(), offset, os.SEEK_HOLE)
            except OSError as error:
                if error.errno == errno.ENXIO:
                    break
                if error.errno != errno.EINVAL:
                    raise
                end = size
            while offset < end:
                chunk = os.pread(reader.fileno(), min(BLOCK, end - offset), offset)
                if not chunk:
                    break
                os.pwrite(writer.fileno(), chunk, offset)
                offset += len(chunk)
        os.ftruncate(writer.fileno(), size)
    shutil.copystat(source, target)


def copy_tree_sparse(source: Path, target: Path) -> None:
    shutil.copytree(source, target, copy_function=copy_sparse, dirs_exist_ok=True)


def allocated_bytes(root: Path) -> int:
    """Bytes the files under ``root`` occupy on disk (holes excluded)."""
    return sum(os.lstat(Path(folder) / name).st_blocks * 512 for folder, _, names in os.walk(root) for name in names)


def check_free_space(folder: Path, needed: int) -> None:
    """``IndexUnavailableError`` unless ``folder``'s disk has ``needed`` bytes free: the engine writes through
    memory-mapped files, and a page it cannot back on a full disk kills the process (a bus error) instead
    of raising an error."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise IndexUnavailableError(
            f"not enough free space in {folder} to write the index: about {needed / 2**20:,.0f} MB needed, "
            f"{free / 2**20:,.0f} MB free"
        )


def lock_folder(path: Path, exclusive: bool, busy_message: str) -> int:
    """A descriptor holding a shared (readers) or exclusive lock on the folder ``path``; works on a read-only
    mount. ``IndexUnavailableError(busy_message)`` if a conflicting lock is held."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise IndexUnavailableError(busy_message) from None
    return descriptor


def make_view(shard: Path) -> tuple[Path, int]:
    """A scratch copy of ``shard`` for the engine to open (see the module docstring) and the descriptor of
    its lock; stale views of killed processes are removed first. ENOSPC names the scratch folder."""
    scratch_root = Path(tempfile.gettempdir())
    remove_stale_views(scratch_root)
    view = Path(tempfile.mkdtemp(prefix=VIEW_PREFIX, dir=scratch_root))
    lock = lock_folder(view, exclusive=True, busy_message=f"{view} is in use")
    try:
        for folder, _, names in os.walk(shard):
            relative_folder = Path(folder).relative_to(shard)
            (view / relative_folder).mkdir(exist_ok=True)
            for name in names:
                source = Path(folder) / name
                if _engine_reads_only(relative_folder / name):
                    (view / relative_folder / name).symlink_to(source.resolve())
                else:
                    copy_sparse(source, view / relative_folder / name)
    except BaseException as error:
        remove_view(view, lock)
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            raise IndexUnavailableError(
                f"no space left in {scratch_root} for the scratch files that opening the index needs "
                f"(a few MB); free some, or point TMPDIR at a folder with room"
            ) from error
        raise
    return view, lock


def remove_view(view: Path, lock: int) -> None:
    shutil.rmtree(view, ignore_errors=True)
    os.close(lock)


def remove_stale_views(scratch_root: Path) -> None:
    """Views whose lock nobody holds: their process was killed before it could remove them."""
    for entry in scratch_root.glob(f"{VIEW_PREFIX}*"):
        try:
            descriptor = lock_folder(entry, exclusive=True, busy_message="")
        except (IndexUnavailableError, OSError):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        os.close(descriptor)
