"""Exact top-k rankings computed block by block, in a working memory bounded by ``max_memory_mb``.

Two engines, one result. On CPUs with AMX matrix units, float32 embeddings of 64 or more
dimensions are ranked approximately by bfloat16 products of query blocks against the whole
gallery, and each query's few candidates re-ranked by float32 keys (simtune.functional.screening):
same ranking, faster (8,100 x 1,280 tuned cars embeddings, all metrics: ~0.75 s instead of ~1 s on
two cores). Its first, small block decides: data whose candidates are too many (keys crowded
together, as in Gaussian noise) go to the other engine. There, gallery blocks stream past query
blocks and only each query's top-k survives (memory O(block^2 + queries x k)); when the queries are
the gallery (leave-one-out), each block pair's product is computed once and serves both blocks.
A query's depth can be its own (``depths``): its row holds its top-depth, then -1.

Ranking rule (ties included): gallery items are ordered by a ranking key, lowest first, computed
in the embeddings' float dtype (float32 unless float64 is given); items with exactly equal keys are
ordered by gallery index, lowest first. The key is monotone in the distance and costs one matrix
product per block against a gallery prepared once: cosine: -<q/|q|, g/|g|>; dot_product: -<q, g>;
euclidean: |g|^2 + (-2<q, g>) (the squared distance less the query's constant |q|^2); any other
distance: its ``distance_matrix``. (The products' last bits can depend on the block shapes the
memory bound picks: exactly equal keys are ordered as stated, keys one rounding apart may swap.)
A query's own gallery entry and ``excluded_pairs`` are removed by index, never by distance, so
duplicates of a query stay in the ranking and count as ordinary results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from simtune.distances import Distance, get_distance
from simtune.functional.screening import MAX_CANDIDATES_PER_RESULT, BFloat16Screen, screening_pays

DEFAULT_MAX_MEMORY_MB = 256


_NO_INDEX = torch.iinfo(torch.int32).max  # an empty slot: sorts after every gallery index
_FIRST_BLOCK = 2  # in units of k: the width of the first gallery block, where every row is cold
_PAIR_BLOCK = 4096  # larger: fewer, bigger operations; smaller: cheaper first (full top-k) block
_TRANSPOSE_ABOVE_DIMENSION = 384  # below it a second product is cheaper than a transposed copy
_PROBE_ROWS = 256  # screening's first block, which decides whether screening pays for these data


@dataclass
class RankedBlock:
    """Rows ``rows`` of the queries and their gallery indices in rank order: each row its query's
    top-depth items, then -1 (up to the largest depth, and where the exclusions left fewer items)."""

    rows: slice
    top_indices: Tensor  # (B, largest depth) int64


def _excluded_in_block(excluded: Tensor, rows: slice, columns: slice) -> Tensor:
    """The excluded (query, gallery) pairs inside the block, as (row, column) positions in it."""
    start, stop = torch.searchsorted(excluded[:, 0].contiguous(), torch.tensor([rows.start, rows.stop]))
    pairs = excluded[start:stop]
    inside = (pairs[:, 1] >= columns.start) & (pairs[:, 1] < columns.stop)
    return pairs[inside] - torch.tensor([rows.start, columns.start])


def _stable_topk(distances: Tensor, k: int) -> Tensor:
    """Indices of the k smallest entries per row, ordered by (distance, gallery index)."""
    num_gallery = distances.shape[1]
    values, indices = distances.topk(min(k + 1, num_gallery), dim=1, largest=False)
    # Equal to the first left-out value: topk may have kept the wrong one of several equal items.
    tied_at_boundary = values[:, k] == values[:, k - 1] if k < num_gallery else None
    values, indices = values[:, :k], indices[:, :k]
    # Order equal distances by index: sort by index, then stable-sort by distance.
    indices, order = indices.sort(dim=1)
    _, order = values.gather(1, order).sort(dim=1, stable=True)
    indices = indices.gather(1, order)
    if tied_at_boundary is not None and tied_at_boundary.any():
        rows = tied_at_boundary.nonzero()[:, 0]
        indices[rows] = distances[rows].sort(dim=1, stable=True).indices[:, :k]
    return indices


def _slots(k: int) -> int:
    """A row's top-k and its buffer: 2k, room for the about k survivors of each of two blocks,
    and at least 64, as a small k's survivor counts vary more."""
    return k + max(2 * k, 64)


class _RunningTopK:
    """Exact top-k per row of ranking keys that arrive block by block, in O(rows x k) memory.

    Once a row holds k results, a key not below its k-th cannot enter, so one comparison discards
    almost every key of the later blocks; the few survivors wait in a buffer, merged (a top-k of
    top-k and buffer) only when it is half full. (A top-k over every key, the cost this replaces,
    took most of the time of large evaluations.) Each row must be offered its gallery columns in
    increasing order: then equal keys already sit in index order, a stable order by key alone gives
    the (key, index) ranking rule, and an equal key arriving later ranks lower.
    """

    def __init__(self, num_rows: int, k: int, dtype: torch.dtype, device: torch.device):
        self.k = k
        # slots [0, k): the sorted top-k so far; then the buffer, used up to ``fill``
        self.slots = _slots(k)
        self.keys = torch.full((num_rows, self.slots), math.inf, dtype=dtype, device=device)
        self.indices = torch.full((num_rows, self.slots), _NO_INDEX, dtype=torch.int32, device=device)
        self.fill = torch.full((num_rows,), k, device=device)
        self.threshold = torch.full((num_rows,), math.inf, dtype=dtype, device=device)

    def add(self, rows: slice, keys: Tensor, first_column: int, excluded: Tensor) -> None:
        """Offers ``keys`` (R, C) of ``rows`` against gallery columns from ``first_column`` on,
        except the ``excluded`` (row, column) positions."""
        candidates = keys < self.threshold[rows, None]
        candidates[excluded[:, 0], excluded[:, 1]] = False
        dense = bool(self.threshold[rows].isinf().any())
        if not dense:
            row, column = candidates.nonzero().unbind(1)
            counts = torch.bincount(row, minlength=len(keys))
            dense = int(counts.max()) > self.slots - self.k
        if dense:  # a row's first block, or one with many new results: only its top-k can enter
            top = _stable_topk(keys.masked_fill(~candidates, math.inf), self.k).sort(dim=1).values
            kept = candidates.gather(1, top)
            row = torch.arange(len(keys), device=keys.device)[:, None].expand_as(top)[kept]
            column = top[kept]
            counts = kept.sum(1)
        if int((self.fill[rows] + counts).max()) > self.slots:
            self._merge(rows)
        slot = torch.arange(len(row), device=row.device) + (self.fill[rows] - (counts.cumsum(0) - counts))[row]
        self.keys[rows][row, slot] = keys[row, column]
        self.indices[rows][row, slot] = column.int().add_(first_column)
        self.fill[rows] += counts
        # a threshold as old as one block lets about twice as many keys pass: merge at half full
        if dense or 2 * (int(self.fill[rows].max()) - self.k) > self.slots - self.k:
            self._merge(rows)

    def _merge(self, rows: slice) -> None:
        used = int(self.fill[rows].max())  # the slots after it are empty in every row
        if used == self.k:
            return
        keys, order = self.keys[rows, :used].topk(self.k + 1, dim=1, largest=False)
        # topk orders equal keys arbitrarily; the slots hold them in index order, which a stable sort keeps
        tied = (keys[:, 1:] == keys[:, :-1]).any(1).nonzero()[:, 0]
        if len(tied):
            keys[tied], order[tied] = (t[:, : self.k + 1] for t in self.keys[rows][tied, :used].sort(dim=1, stable=True))
        self.indices[rows, : self.k] = self.indices[rows, :used].gather(1, order[:, : self.k])
        self.keys[rows, : self.k] = keys[:, : self.k]
        self.keys[rows, self.k : used] = math.inf
        self.indices[rows, self.k : used] = _NO_INDEX
        self.threshold[rows] = keys[:, self.k - 1]
        self.fill[rows] = self.k

    def finish(self, rows: slice) -> Tensor:
        """The rows' top-k gallery indices (int64, -1 for slots no gallery item filled)."""
        self._merge(rows)
        indices = self.indices[rows, : self.k].long()
        return indices.masked_fill_(indices == _NO_INDEX, -1)


class RankingKey:
    """Prepares the gallery once so that each block of keys costs one matrix product."""

    def __init__(self, distance: Distance, gallery: Tensor):
        self.distance = distance
        self.squared_norms = None
        if distance.name == "cosine":
            self.gallery = -F.normalize(gallery, dim=1)
        elif distance.name == "dot_product":
            self.gallery = -gallery
        elif distance.name == "euclidean":
            self.squared_norms = (gallery * gallery).sum(1)
            self.gallery = -2.0 * gallery  # exact: a power-of-two scale
        else:
            self.gallery = gallery

    @property
    def is_product(self) -> bool:
        """Keys from one matrix product, whose transpose gives the keys the other way round."""
        return self.distance.name in ("cosine", "dot_product", "euclidean")

    def prepare(self, queries: Tensor) -> Tensor:
        return F.normalize(queries, dim=1) if self.distance.name == "cosine" else queries

    @property
    def query_scale(self) -> float:
        """Product keys: the prepared gallery times this is the same embeddings prepared as queries
        (a power of two: exact), which spares leave-one-out rankings a second preparation."""
        return -0.5 if self.distance.name == "euclidean" else -1.0

    def keys(self, prepared_queries: Tensor, columns: slice = slice(None)) -> Tensor:
        """Keys of prepared query rows against the gallery ``columns``."""
        if not self.is_product:
            return self.distance.distance_matrix(prepared_queries, self.gallery[columns])
        return self.complete(prepared_queries @ self.gallery[columns].T, columns)

    def complete(self, product: Tensor, columns: slice) -> Tensor:
        """Keys from the product with the gallery ``columns``, in place: euclidean adds their squared norms."""
        return product if self.squared_norms is None else product.add_(self.squared_norms[columns])


def _blocks(length: int, size: int, first: int | None = None) -> list[slice]:
    """Blocks of ``size``; with ``first``, the leading ones grow as first, first, 2 first, 4 first, ...:
    a row's first block gets a full top-k, so a narrow one is cheap, and each later block, as wide as
    all before it, lets only about k keys per row past the threshold they set."""
    blocks, start, width = [], 0, min(first or size, size)
    while start < length:
        blocks.append(slice(start, min(start + width, length)))
        start += width
        width = min(2 * width, size) if len(blocks) > 1 else width
    return blocks


def _progress(items: list, enabled: bool, desc: str) -> Iterator:
    if not enabled:
        return iter(items)
    from tqdm.auto import tqdm

    return iter(tqdm(items, desc=desc, unit="block"))


def ranked(
    queries: Tensor, key: RankingKey, depths: Tensor, excluded_pairs: Tensor, leave_one_out: bool, budget: float,
    progress: bool,
) -> Iterator[RankedBlock]:
    """Query blocks with their exact top-``depths`` (Q,), each at least 1 and at most the gallery
    size. ``leave_one_out``: the queries are the gallery (``key`` prepared from them) and
    ``excluded_pairs`` are exactly each query's own entry."""
    same_rows = leave_one_out and key.is_product
    prepared = key.gallery * key.query_scale if same_rows else key.prepare(queries)
    excluded_pairs = excluded_pairs[excluded_pairs[:, 0].argsort(stable=True)]
    k = int(depths.max())
    if key.is_product and screening_pays(key.gallery, k):
        screened = _ranked_screened(prepared, key, depths, excluded_pairs, same_rows, budget, progress)
        probe = next(screened, None)
        if probe is not None:  # None: the first block's candidates were too many to win
            yield probe
            yield from screened
            return
    for block in _ranked_float(prepared, key, k, excluded_pairs, leave_one_out, budget, progress):
        yield RankedBlock(block.rows, _cut(block.top_indices, depths[block.rows]))


def _cut(top_indices: Tensor, depths: Tensor) -> Tensor:
    """-1 after each row's own depth."""
    positions = torch.arange(top_indices.shape[1])
    return top_indices.masked_fill_(positions[None, :] >= depths[:, None], -1)


def _ranked_screened(
    queries: Tensor, key: RankingKey, depths: Tensor, excluded_pairs: Tensor, same_rows: bool, budget: float,
    progress: bool,
) -> Iterator[RankedBlock]:
    """Query blocks against the whole gallery, screened in bfloat16 (simtune.functional.screening).
    Stops before its first block when that block's candidates are too many for screening to pay:
    data with little structure (near-equal keys everywhere) ranks faster in float32. ``same_rows``:
    the queries are the gallery rows scaled by ``key.query_scale``, whose rounding is known."""
    screen = BFloat16Screen(key.gallery, key.squared_norms)
    num_gallery = len(key.gallery)
    # a row's bfloat16 product, float32 (euclidean) keys and candidate mask, and its candidates' temporaries
    row_bytes = 8 * num_gallery + 64 * int(depths.max())
    size = max(1, min(len(queries), int(budget // row_bytes)))
    blocks = _blocks(len(queries), size, min(size, _PROBE_ROWS))
    for position, rows in enumerate(_progress(blocks, progress, "ranking")):
        excluded = _excluded_in_block(excluded_pairs, rows, slice(0, num_gallery)).to(key.gallery.device)
        rounded = screen.scaled_rows(rows, key.query_scale) if same_rows else None
        top_k, candidates = screen.top_k(queries[rows], depths[rows].to(key.gallery.device), excluded, rounded)
        if position == 0 and candidates > MAX_CANDIDATES_PER_RESULT * int(depths[rows].sum()):
            return
        yield RankedBlock(rows, top_k.cpu())


def _ranked_float(
    queries: Tensor, key: RankingKey, k: int, excluded_pairs: Tensor, leave_one_out: bool, budget: float, progress: bool
) -> Iterator[RankedBlock]:
    """Every key a float32 (float64) product or distance: gallery blocks stream past query blocks,
    or, leave-one-out, each block pair is multiplied once for both of its blocks."""
    itemsize = key.gallery.element_size()
    slot_bytes = _slots(k) * (itemsize + 4)  # a row's top-k and buffer
    # a (B, B) key block, its transposed keys, and the top-k and mask temporaries of a dense add
    pair_bytes = 4 * itemsize + 2
    num_queries, device = len(queries), key.gallery.device
    if leave_one_out and key.is_product and num_queries * slot_bytes < budget:
        size = max(1, min(_PAIR_BLOCK, math.isqrt(int(budget - num_queries * slot_bytes) // pair_bytes)))
        yield from _ranked_leave_one_out(queries, key, k, _blocks(num_queries, size, _FIRST_BLOCK * k), progress)
        return
    size = max(1, int((math.sqrt(slot_bytes**2 + 4 * pair_bytes * budget) - slot_bytes) / (2 * pair_bytes)))
    columns = _blocks(len(key.gallery), size, _FIRST_BLOCK * k)
    for rows in _progress(_blocks(num_queries, size), progress, "ranking"):
        top_k = _RunningTopK(rows.stop - rows.start, k, key.gallery.dtype, device)
        local = slice(0, rows.stop - rows.start)
        for block in columns:
            excluded = _excluded_in_block(excluded_pairs, rows, block).to(device)
            top_k.add(local, key.keys(queries[rows], block), block.start, excluded)
        yield RankedBlock(rows, top_k.finish(local).cpu())


def _ranked_leave_one_out(
    queries: Tensor, key: RankingKey, k: int, blocks: list[slice], progress: bool
) -> Iterator[RankedBlock]:
    """Queries = gallery: each block pair (i, j >= i) is multiplied once and serves the rows of both
    blocks (j's keys against i are the transposed product), which halves the matrix products.
    Block i is final after its pairs (i, j >= i): the pairs (j < i, i) came before."""
    num_rows, device, dtype = len(key.gallery), key.gallery.device, key.gallery.dtype
    top_k = _RunningTopK(num_rows, k, dtype, device)
    no_pairs = torch.zeros(0, 2, dtype=torch.long, device=device)
    # reused for every pair: fresh multi-megabyte tensors cost page faults comparable to the product
    size = max(block.stop - block.start for block in blocks)
    product_buffer, transposed_buffer = torch.empty(2, size**2, dtype=dtype, device=device)
    for position, rows in enumerate(_progress(blocks, progress, "ranking")):
        for columns in blocks[position:]:
            shape = (rows.stop - rows.start, columns.stop - columns.start)
            product = product_buffer[: shape[0] * shape[1]].view(shape)
            torch.mm(queries[rows], key.gallery[columns].T, out=product)
            if columns == rows:
                diagonal = torch.arange(shape[0], device=device)[:, None].expand(-1, 2)
                top_k.add(rows, key.complete(product, columns), columns.start, diagonal)
                continue
            transposed = transposed_buffer[: shape[0] * shape[1]].view(shape[::-1])
            if queries.shape[1] <= _TRANSPOSE_ABOVE_DIMENSION:
                torch.mm(queries[columns], key.gallery[rows].T, out=transposed)
            else:
                transposed.copy_(product.T)
            top_k.add(columns, key.complete(transposed, rows), rows.start, no_pairs)
            top_k.add(rows, key.complete(product, columns), columns.start, no_pairs)
        yield RankedBlock(rows, top_k.finish(rows).cpu())


def ranked_blocks(
    queries: Tensor,
    gallery: Tensor | None,
    k: int | Tensor,
    *,
    distance: str | Distance = "cosine",
    excluded_pairs: Tensor | None = None,
    max_memory_mb: float = DEFAULT_MAX_MEMORY_MB,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> Iterator[RankedBlock]:
    """Yields query blocks with their exact top-k (see the module ranking rule), in query order.

    ``k`` is one depth for every query or a (Q,) tensor of per-query depths (each row holds its
    query's top-depth items, then -1 up to the largest depth).
    ``gallery=None``: the queries are the gallery and each query's own entry is excluded.
    ``excluded_pairs`` (E, 2) are (query, gallery) index pairs removed from the ranking.
    ``max_memory_mb`` bounds the working memory (key blocks, the rows' top-k and their buffers);
    the embeddings and one prepared copy of the gallery come on top.
    """
    queries, key = prepare_ranking(queries, gallery, distance, device)
    excluded = torch.zeros(0, 2, dtype=torch.long) if excluded_pairs is None else excluded_pairs
    if gallery is not None:
        leave_one_out = False
    else:
        leave_one_out = len(excluded) == 0
        excluded = torch.cat([excluded, torch.arange(len(queries))[:, None].expand(-1, 2)])
    depths = torch.as_tensor(k).long().cpu().expand(len(queries)).clamp(1, len(key.gallery))
    yield from ranked(queries, key, depths, excluded, leave_one_out, max_memory_mb * 2**20, progress)


def prepare_ranking(
    queries: Tensor, gallery: Tensor | None, distance: str | Distance, device: str | torch.device | None
) -> tuple[Tensor, RankingKey]:
    """Queries on the device in the ranking dtype, and the ranking key of the gallery (None: the queries)."""
    device = torch.device(device) if device is not None else queries.device
    dtype = torch.float64 if queries.dtype == torch.float64 else torch.float32
    queries = queries.to(device=device, dtype=dtype)
    gallery = queries if gallery is None else gallery.to(device=device, dtype=dtype)
    return queries, RankingKey(get_distance(distance), gallery)
