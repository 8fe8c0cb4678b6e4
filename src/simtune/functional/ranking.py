"""Exact top-k rankings computed block by block, in a working memory bounded by ``max_memory_mb``.

Ranking rule (ties included): gallery items are ordered by a ranking key, lowest first, computed
in the embeddings' float dtype (float32 unless float64 is given); items with exactly equal keys are
ordered by gallery index, lowest first. The key is monotone in the distance and costs one matrix
product per block against a gallery prepared once: cosine: -<q/|q|, g/|g|>; dot_product: -<q, g>;
euclidean: |g|^2 + (-2<q, g>) (the squared distance less the query's constant |q|^2); any other
distance: its ``distance_matrix``. (The products' last bits can depend on the block shapes the
memory bound picks: exactly equal keys are ordered as stated, keys one rounding apart may swap.)
A query's own gallery entry and ``excluded_pairs`` are removed by index, never by distance, so
duplicates of a query stay in the ranking and count as ordinary results.

How: query blocks meet gallery blocks; from each block of keys every row keeps its best
``depth + 1`` as candidates (in faiss's heaps where faiss is installed, else by ``torch.topk`` of
the keys below the row's current bound). When the queries are the gallery (leave-one-out, product
keys), each block pair's product is computed once and its transpose serves the other block, and
the blocks are small enough that the diagonal pairs, multiplied whole, add little: about half the
matrix products. Heaps and ``topk`` keep an arbitrary one of equal keys at their cut, so the
candidates are then ordered by (key, gallery index) and checked: every item left out has a key at
least the largest candidate key, so a row whose depth-th key is below that holds its exact
top-depth; a row where they are equal (a tie across the cut) is ranked again against its whole
gallery row. Queries are taken in order of decreasing depth, so each block's candidates are about
as many as each of its rows needs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from simtune.distances import Distance, get_distance

DEFAULT_MAX_MEMORY_MB = 256
# Rows per block: a block pair's keys (4 MB at 1024 x 1024 float32) stay in cache while the product
# writes them, the transposed copy reads them and the keepers scan them; blocks of 4096 rows spill to
# memory and make each of those passes several times slower per key.
_MAX_BLOCK = 1024
_LEAVE_ONE_OUT_BLOCKS = 8  # at least: the whole diagonal block pairs then add 1/16 of the product to its half
_LARGEST_FLOAT32_NORM = 1e18  # float32 keys of larger embeddings could overflow: ranked in float64

try:  # optional (simtune[eval]): faiss's heaps keep each row's top-k in one C++ pass over the keys
    import faiss as _faiss
except ImportError:
    _faiss = None


def _candidates_type(key: RankingKey) -> type:
    """faiss's heaps where they apply (float32 keys in CPU memory), torch everywhere else."""
    usable = _faiss is not None and key.gallery.device.type == "cpu" and key.gallery.dtype == torch.float32
    return _HeapCandidates if usable else _Candidates


@dataclass
class RankedBlock:
    """Queries ``rows`` (indices) and their gallery indices in rank order: each row its query's
    top-depth items, then -1 (up to the block's largest depth, and where exclusions left fewer items)."""

    rows: Tensor  # (B,) int64
    top_indices: Tensor  # (B, largest depth) int64


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

    def transposed_keys(self, product: Tensor, rows: slice) -> Tensor:
        """Keys of the gallery columns of ``product`` as queries against the gallery ``rows``:
        its transpose (a copy: a one-row ``product``'s transpose is already contiguous, and adding
        to it in place would change ``product``), euclidean plus the rows' squared norms."""
        keys = product.T.clone(memory_format=torch.contiguous_format)
        return keys if self.squared_norms is None else keys.add_(self.squared_norms[rows])

    def permuted(self, order: Tensor) -> RankingKey:
        """The same key over the gallery rows in ``order``."""
        key = RankingKey.__new__(RankingKey)
        key.distance, key.gallery = self.distance, self.gallery[order]
        key.squared_norms = None if self.squared_norms is None else self.squared_norms[order]
        return key


class _Candidates:
    """Each row's ``width`` lowest keys so far, from blocks of keys offered one by one.

    A key not below a row's current ``width``-th lowest cannot enter, so one comparison discards
    almost every key of a block once the row has seen one block: ``topk`` sees only the survivors
    (a ``topk`` over every key would cost more than the matrix products)."""

    def __init__(self, num_rows: int, width: int, dtype: torch.dtype, device: torch.device):
        self.keys = torch.full((num_rows, width), math.inf, dtype=dtype, device=device)
        self.indices = torch.full((num_rows, width), -1, dtype=torch.long, device=device)
        self.bound = torch.full((num_rows,), math.inf, dtype=dtype, device=device)

    def offer(self, keys: Tensor, first_column: int) -> None:
        """Offers ``keys`` (rows, C) of gallery columns ``first_column`` to ``first_column + C``."""
        if bool(self.bound.isinf().any()):  # a row's first keys: its whole top-width enters
            values, column = keys.topk(min(self.keys.shape[1], keys.shape[1]), dim=1, largest=False, sorted=False)
            row = torch.arange(len(keys), device=keys.device)[:, None].expand_as(column).flatten()
            column, values = column.flatten(), values.flatten()
        else:
            row, column = (keys < self.bound[:, None]).nonzero().unbind(1)
            values = keys.flatten()[row * keys.shape[1] + column]
        if len(row) == 0:
            return
        counts = torch.bincount(row, minlength=len(self.keys))
        slot = torch.arange(len(row), device=row.device) - (counts.cumsum(0) - counts)[row]
        new_keys = self.keys.new_full((len(self.keys), int(counts.max())), math.inf)
        new_indices = self.indices.new_full(new_keys.shape, -1)
        new_keys[row, slot] = values
        new_indices[row, slot] = column + first_column
        merged_keys, merged_indices = torch.cat([self.keys, new_keys], 1), torch.cat([self.indices, new_indices], 1)
        self.keys, kept = merged_keys.topk(self.keys.shape[1], dim=1, largest=False, sorted=False)
        self.indices = merged_indices.gather(1, kept)
        self.bound = self.keys.amax(1)

    def ranked(self, depths: Tensor, gallery_index: Tensor | None, num_gallery: int) -> tuple[Tensor, Tensor]:
        """Rows' top-depth gallery indices by (key, index), -1 past each depth, and which rows are
        exact: those whose candidates hold every item that could tie their depth-th."""
        keys = self.keys
        indices = self.indices if gallery_index is None else gallery_index[self.indices.clamp(min=0)]
        indices = indices.masked_fill(keys.isinf(), -1)
        indices, order = indices.sort(dim=1)
        keys, by_key = keys.gather(1, order).sort(dim=1, stable=True)
        indices = indices.gather(1, by_key)
        largest = keys[:, -1]
        at_depth = keys.gather(1, (depths - 1)[:, None])[:, 0]
        exact = (at_depth < largest) | largest.isinf() | (keys.shape[1] >= num_gallery)
        width = int(depths.max())
        top = indices[:, :width]
        return top.masked_fill_(torch.arange(width, device=top.device)[None, :] >= depths[:, None], -1), exact


class _HeapCandidates(_Candidates):
    """``_Candidates`` kept in faiss's per-row heaps (``float_maxheap_array_t.addn``): one C++ pass
    over each block of keys compares every key with its row's heap top and replaces the top in the
    rare case it is lower, which is what faiss's own exact search does after its matrix products.
    Rejected keys were at least the heap top then, so at least the final largest candidate key."""

    def __init__(self, num_rows: int, width: int, dtype: torch.dtype, device: torch.device):
        self._keys = torch.empty((num_rows, width), dtype=torch.float32)
        self._indices = torch.empty((num_rows, width), dtype=torch.long)
        self.heaps = _faiss.float_maxheap_array_t()
        self.heaps.nh, self.heaps.k = num_rows, width
        self.heaps.val = _faiss.swig_ptr(self._keys.numpy())
        self.heaps.ids = _faiss.swig_ptr(self._indices.numpy())
        self.heaps.heapify()  # keys float32's largest finite value, indices -1

    def offer(self, keys: Tensor, first_column: int) -> None:
        keys = keys.contiguous()
        self.heaps.addn(keys.shape[1], _faiss.swig_ptr(keys.numpy()), first_column, 0, keys.shape[0])

    @property
    def indices(self) -> Tensor:
        return self._indices

    @property
    def keys(self) -> Tensor:
        return self._keys.masked_fill(self._indices < 0, math.inf)


def _excluded_in_block(excluded: Tensor, rows: slice, columns: slice) -> Tensor:
    """The excluded (row, gallery) pairs, sorted by row, inside the block, as positions in it."""
    start, stop = torch.searchsorted(excluded[:, 0].contiguous(), torch.tensor([rows.start, rows.stop]))
    pairs = excluded[start:stop]
    inside = (pairs[:, 1] >= columns.start) & (pairs[:, 1] < columns.stop)
    return pairs[inside] - torch.tensor([rows.start, columns.start])


def _blocks(length: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, length)) for start in range(0, length, size)]


def _leave_one_out_blocks(length: int, largest: int) -> list[slice]:
    """Blocks of (nearly) equal sizes, at most ``largest`` rows, and ``_LEAVE_ONE_OUT_BLOCKS`` of
    them or more (fewer only for a few rows: 9 rows give blocks of 2, 2, 2, 2 and 1).

    b blocks multiply b(b + 1)/2 block pairs of the b^2: the diagonal pairs are computed whole, so
    two blocks would cost 3/4 of the full product where 8 cost 9/16 (smaller blocks cost no more per
    key: the products stay large enough for BLAS and the key blocks fit in cache better)."""
    count = max(_LEAVE_ONE_OUT_BLOCKS, -(-length // largest))
    return _blocks(length, -(-length // count))


def _progress(items: list, enabled: bool, desc: str) -> Iterator:
    if not enabled:
        return iter(items)
    from tqdm.auto import tqdm

    return iter(tqdm(items, desc=desc, unit="block"))


def full_row_keys(queries: Tensor, key: RankingKey, rows: Tensor, excluded_pairs: Tensor) -> Tensor:
    """Keys of the prepared query ``rows`` against the whole gallery, their excluded pairs at +inf."""
    keys = key.keys(key.prepare(queries[rows.to(queries.device)]))
    pairs = excluded_pairs[torch.isin(excluded_pairs[:, 0], rows)]
    local = torch.searchsorted(rows, pairs[:, 0].contiguous())
    keys[local.to(keys.device), pairs[:, 1].to(keys.device)] = math.inf
    return keys


def _rank_full_rows(
    queries: Tensor, key: RankingKey, rows: Tensor, depths: Tensor, width: int, excluded_pairs: Tensor, budget: float
) -> Tensor:
    """Top-depth of query ``rows`` (sorted) by a stable sort of their whole gallery rows, -1 up to ``width``."""
    top = torch.full((len(rows), width), -1, dtype=torch.long)
    chunk = max(1, int(budget // (len(key.gallery) * 3 * key.gallery.element_size())))
    for start in range(0, len(rows), chunk):
        part = slice(start, start + chunk)
        keys = full_row_keys(queries, key, rows[part], excluded_pairs)
        keys, order = keys.sort(dim=1, stable=True)
        top[part, : keys.shape[1]] = order[:, :width].masked_fill(keys[:, :width].isinf(), -1).cpu()
    return top.masked_fill_(torch.arange(width)[None, :] >= depths[:, None], -1)


def ranked(
    queries: Tensor,
    key: RankingKey,
    depths: Tensor,
    excluded_pairs: Tensor,
    leave_one_out: bool,
    budget: float,
    progress: bool,
) -> Iterator[RankedBlock]:
    """Query blocks with their exact top-``depths`` (Q,), each at least 1 and at most the gallery
    size, in order of decreasing depth. ``leave_one_out``: the queries are the gallery (``key``
    prepared from them) and ``excluded_pairs`` are exactly each query's own entry."""
    order = depths.argsort(descending=True, stable=True)
    widths = (depths[order] + 1).clamp(max=len(key.gallery))  # one beyond the depth shows a tie across the cut
    itemsize = key.gallery.element_size()
    state_bytes = int(widths.sum()) * (itemsize + 8)  # every row's candidates
    if leave_one_out and key.is_product and state_bytes < budget / 2:
        largest = max(1, min(_MAX_BLOCK, math.isqrt(int(budget - state_bytes) // (3 * itemsize))))
        blocks = _ranked_leave_one_out(
            key.permuted(order), widths, _leave_one_out_blocks(len(queries), largest), progress
        )
        gallery_index = order.to(key.gallery.device)
    else:
        size = max(1, min(_MAX_BLOCK, math.isqrt(int(budget) // (3 * itemsize + 24))))
        position = torch.empty_like(order)
        position[order] = torch.arange(len(order))
        excluded = torch.stack([position[excluded_pairs[:, 0]], excluded_pairs[:, 1]], 1)
        excluded = excluded[excluded[:, 0].argsort(stable=True)]
        blocks = _ranked_gallery(key.prepare(queries[order]), key, widths, excluded, size, progress)
        gallery_index = None
    for rows, candidates in blocks:
        query_rows, row_depths = order[rows], depths[order[rows]]
        top, exact = candidates.ranked(row_depths.to(candidates.keys.device), gallery_index, len(key.gallery))
        top, exact = top.cpu(), exact.cpu()
        if not exact.all():
            again = query_rows[~exact].sort()
            ranked_again = _rank_full_rows(
                queries, key, again.values, row_depths[~exact][again.indices], top.shape[1], excluded_pairs, budget
            )
            top[~exact] = ranked_again[again.indices.argsort()]
        yield RankedBlock(query_rows, top)


def _ranked_gallery(
    queries: Tensor, key: RankingKey, widths: Tensor, excluded: Tensor, size: int, progress: bool
) -> Iterator[tuple[slice, _Candidates]]:
    """Query blocks, each meeting every gallery block; ``excluded`` (row, gallery) sorted by row."""
    device, candidates_type = key.gallery.device, _candidates_type(key)
    for rows in _progress(_blocks(len(queries), size), progress, "ranking"):
        candidates = candidates_type(rows.stop - rows.start, int(widths[rows].max()), key.gallery.dtype, device)
        for columns in _blocks(len(key.gallery), size):
            keys = key.keys(queries[rows], columns)
            pairs = _excluded_in_block(excluded, rows, columns).to(device)
            keys[pairs[:, 0], pairs[:, 1]] = math.inf
            candidates.offer(keys, columns.start)
        yield rows, candidates


def _ranked_leave_one_out(
    key: RankingKey, widths: Tensor, blocks: list[slice], progress: bool
) -> Iterator[tuple[slice, _Candidates]]:
    """Queries = gallery: each block pair (i, j > i) is multiplied once and serves the rows of both
    blocks (j's keys against i are the transposed product). The diagonal blocks come first, so
    every row has candidates (and a bound) before the pairs; block i is final after its pairs
    (i, j > i): the pairs (j < i, i) came before."""
    queries = key.gallery * key.query_scale
    candidates, candidates_type = [], _candidates_type(key)
    for rows in blocks:
        candidates.append(
            candidates_type(rows.stop - rows.start, int(widths[rows].max()), key.gallery.dtype, key.gallery.device)
        )
        product = queries[rows] @ key.gallery[rows].T
        candidates[-1].offer(key.complete(product, rows).fill_diagonal_(math.inf), rows.start)
    for i, rows in enumerate(_progress(blocks, progress, "ranking")):
        for j in range(i + 1, len(blocks)):
            columns = blocks[j]
            product = queries[rows] @ key.gallery[columns].T
            candidates[j].offer(key.transposed_keys(product, rows), rows.start)
            candidates[i].offer(key.complete(product, columns), columns.start)
        yield rows, candidates[i]
        candidates[i] = None


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
    """Yields query blocks with their exact top-k (see the module ranking rule).

    ``k`` is one depth for every query (blocks then come in query order) or a (Q,) tensor of
    per-query depths (blocks in order of decreasing depth; each row holds its query's top-depth
    items, then -1 up to its block's largest depth).
    ``gallery=None``: the queries are the gallery and each query's own entry is excluded.
    ``excluded_pairs`` (E, 2) are (query, gallery) index pairs removed from the ranking.
    ``max_memory_mb`` bounds the working memory (key blocks and the rows' candidates);
    the embeddings and one prepared copy of the gallery come on top.
    """
    queries, key = prepare_ranking(queries, gallery, distance, device)
    excluded = torch.zeros(0, 2, dtype=torch.long) if excluded_pairs is None else torch.as_tensor(excluded_pairs).long()
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
    largest = max(float(x.detach().norm(dim=1).max()) for x in (queries, queries if gallery is None else gallery))
    dtype = torch.float64 if queries.dtype == torch.float64 or largest > _LARGEST_FLOAT32_NORM else torch.float32
    queries = queries.to(device=device, dtype=dtype)
    gallery = queries if gallery is None else gallery.to(device=device, dtype=dtype)
    return queries, RankingKey(get_distance(distance), gallery)
