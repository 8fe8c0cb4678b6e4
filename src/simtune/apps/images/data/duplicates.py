"""Byte-identical images under different names, found cheaply: a duplicate would find its twin at rank one
and inflate every retrieval metric (a collection of pairs scores Precision@1 = 1.0 with any model).

Files are grouped by size first (one ``stat`` each); only files that share a size are hashed, streaming
(a fixed-size buffer, never a whole file in memory), in a few threads since hashing releases the GIL.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

CHUNK_BYTES = 1 << 20


def file_digest(path: Path) -> bytes:
    """BLAKE2b of the file's bytes, read ``CHUNK_BYTES`` at a time."""
    digest = hashlib.blake2b(digest_size=32)
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.digest()


def identical_files(
    paths: Sequence[Path], keys: Sequence[Hashable] | None = None, workers: int = 2, progress: bool = True
) -> dict[int, int]:
    """``{index of a later copy: index of the first file with the same bytes}`` over ``paths``. ``keys`` (one
    per path, e.g. a crop box) must match too: the same photo cropped to two boxes is two images."""
    keys = keys if keys is not None else [None] * len(paths)
    by_size: dict[tuple[int, Hashable], list[int]] = defaultdict(list)
    for index, path in enumerate(paths):
        by_size[(path.stat().st_size, keys[index])].append(index)
    candidates = [index for group in by_size.values() if len(group) > 1 for index in group]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        digests = list(
            tqdm(
                pool.map(lambda index: file_digest(paths[index]), candidates),
                total=len(candidates),
                desc="looking for duplicate files",
                unit="file",
                disable=not progress or not candidates,
                delay=2,  # only when it takes a while
            )
        )
    first: dict[tuple[bytes, Hashable], int] = {}
    copies = {}
    for index, digest in sorted(zip(candidates, digests)):
        original = first.setdefault((digest, keys[index]), index)
        if original != index:
            copies[index] = original
    return copies
