import math

import pytest
import torch
import torch.nn.functional as F

from simtune.functional import ranking, screening
from simtune.functional.ranking import prepare_ranking, ranked_blocks
from simtune.functional.screening import BFloat16Screen

from .engines import force_engine


def clustered(num, dim, groups, spread, seed):
    """Unit vectors around a few centres: many neighbours within bfloat16's error of each other."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(groups, dim, generator=generator)
    return centres[torch.arange(num) % groups] + spread * torch.randn(num, dim, generator=generator)


@pytest.mark.parametrize("distance", ["cosine", "dot_product", "euclidean"])
@pytest.mark.parametrize("scale", [1.0, 1e-3, 50.0])
def test_the_error_bound_holds_for_every_pair(distance, scale):
    embeddings = scale * clustered(300, 96, 5, 0.3, seed=0)
    queries, key = prepare_ranking(embeddings[:100], embeddings, distance, None)
    queries = key.prepare(queries)
    screen = BFloat16Screen(key.gallery, key.squared_norms)
    approximate = screen.approximate_keys(queries).double()
    exact = (queries.double() @ key.gallery.double().T)
    if key.squared_norms is not None:
        exact += key.squared_norms.double()
    float32 = key.keys(queries).double()
    bound = screen.error_bounds(queries)[:, None]
    assert ((approximate - exact).abs() <= bound).all()
    assert ((approximate - float32).abs() <= bound).all()
    # and tight enough to be worth it: within 30x of the error actually made, here
    assert (bound[:, 0] < 30 * (approximate - exact).abs().amax(1)).all()


def ranks(monkeypatch, on, *args, **kwargs):
    force_engine(monkeypatch, on)
    return torch.cat([block.top_indices for block in ranked_blocks(*args, **kwargs)])


def float64_keys(queries, gallery, indices, distance):
    """Each ranked item's key in float64 (inf for -1 padding)."""
    queries, key = prepare_ranking(queries.double(), gallery.double(), distance, None)
    keys = key.keys(key.prepare(queries))
    return torch.where(indices >= 0, keys.gather(1, indices.clamp(min=0)), torch.inf)


@pytest.mark.parametrize("distance", ["cosine", "dot_product", "euclidean"])
@pytest.mark.parametrize("k", [1, 10, 57, 300])  # 300: more than the candidate width, every row overflows
def test_screened_ranking_is_the_float32_ranking_on_continuous_data(monkeypatch, distance, k):
    embeddings = clustered(400, 80, 7, 0.25, seed=1)
    exact = ranks(monkeypatch, False, embeddings, None, k, distance=distance)
    fast = ranks(monkeypatch, True, embeddings, None, k, distance=distance, max_memory_mb=1)
    # equal, except where two keys are one float32 rounding apart and swap places
    differ = exact != fast
    assert differ.float().mean() < 0.01
    gallery = embeddings
    torch.testing.assert_close(
        float64_keys(embeddings, gallery, fast, distance), float64_keys(embeddings, gallery, exact, distance),
        rtol=2e-6, atol=1e-6,  # a few float32 roundings
    )


@pytest.mark.parametrize("k", [3, 40, 64])  # 64: the whole gallery, exclusions leave fewer
def test_screened_ranking_equals_the_float32_ranking_exactly_on_integer_data(monkeypatch, k):
    """Small integers: every key is exact in bfloat16 and float32 alike, so ties are everywhere and
    both rankings must order them by gallery index."""
    generator = torch.Generator().manual_seed(2)
    queries = torch.randint(-2, 3, (30, 70), generator=generator).float()
    gallery = torch.randint(-2, 3, (64, 70), generator=generator).float()
    gallery[10:20] = gallery[0]  # exact duplicates
    excluded = torch.tensor([[q, (5 * q) % 64] for q in range(30)] + [[q, 0] for q in range(0, 30, 3)])
    for distance in ("dot_product", "euclidean"):
        options = dict(distance=distance, excluded_pairs=excluded, max_memory_mb=0.05)
        assert torch.equal(ranks(monkeypatch, True, queries, gallery, k, **options),
                           ranks(monkeypatch, False, queries, gallery, k, **options))


@pytest.mark.parametrize("k", [1, 7, 100, 999, 1000])
def test_the_kth_key_bound_is_never_below_the_kth_key_and_close_to_it(k):
    generator = torch.Generator().manual_seed(3)
    keys = torch.randn(50, 1000, generator=generator)
    keys[:5, :] = torch.arange(1000.0)  # sorted rows: the best keys share column groups if any do
    keys[5:10, 500:] = torch.inf  # excluded items: fewer than k left when k > 500
    depths = torch.full((50,), k)
    depths[40:] = torch.arange(1, 11).clamp(max=k)  # rows with depths of their own
    bound = screening._kth_smallest_bound(keys, depths)
    ordered = keys.sort(dim=1).values
    assert (bound >= ordered[torch.arange(50), depths - 1]).all()
    looser = (depths + depths // 4 + 2).clamp(max=1000)
    assert (bound <= ordered[torch.arange(50), looser - 1]).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rounding_never_lowers_a_limit(dtype):
    limits = torch.tensor([0.1, -0.3, 1 / 3, -1 / 3, 1e-40, 0.0, 2.0**-10, torch.inf], dtype=torch.float64)
    rounded = screening._rounded_up(limits, dtype)
    assert rounded.dtype == dtype
    assert (rounded.double() >= limits).all()
    assert torch.equal(rounded[5:].double(), limits[5:])  # representable ones stay


def test_data_with_too_many_candidates_fall_back_to_float32_after_one_small_block(monkeypatch):
    """Gaussian noise in many dimensions: every key is near every other, so nearly all items are
    candidates and screening would lose; the first block shows it and float32 ranks them all."""
    embeddings = torch.randn(3000, 1024, generator=torch.Generator().manual_seed(4))
    monkeypatch.setattr(ranking, "screening_pays", lambda gallery, k: True)
    screened_rows, float_calls = [], []
    top_k, ranked_float = BFloat16Screen.top_k, ranking._ranked_float
    monkeypatch.setattr(BFloat16Screen, "top_k", lambda self, q, *a: screened_rows.append(len(q)) or top_k(self, q, *a))
    monkeypatch.setattr(ranking, "_ranked_float", lambda *a: float_calls.append(1) or ranked_float(*a))
    blocks = list(ranked_blocks(embeddings, None, 60))
    assert screened_rows == [ranking._PROBE_ROWS] and float_calls == [1]
    assert [block.rows.start for block in blocks][:2] == [0, blocks[0].rows.stop]  # every row, once
    assert sum(block.rows.stop - block.rows.start for block in blocks) == 3000
    monkeypatch.setattr(ranking, "MAX_CANDIDATES_PER_RESULT", math.inf)
    screened_rows.clear()
    forced = torch.cat([b.top_indices for b in ranked_blocks(embeddings, None, 60)])
    assert sum(screened_rows) == 3000
    torch.testing.assert_close(
        float64_keys(embeddings, embeddings, forced, "cosine"),
        float64_keys(embeddings, embeddings, torch.cat([b.top_indices for b in blocks]), "cosine"),
        rtol=2e-6, atol=1e-6,
    )


@pytest.mark.parametrize("on", [False, True])
def test_per_query_depths_give_each_row_its_own_top_then_minus_one(monkeypatch, on):
    embeddings = clustered(300, 96, 6, 0.3, seed=5)
    depths = torch.randint(1, 40, (300,), generator=torch.Generator().manual_seed(5))
    full = ranks(monkeypatch, on, embeddings, None, 39)
    cut = ranks(monkeypatch, on, embeddings, None, depths)
    assert cut.shape == (300, 39)
    kept = torch.arange(39)[None, :] < depths[:, None]
    assert (cut[~kept] == -1).all()
    assert (cut[kept] >= 0).all()
    torch.testing.assert_close(
        float64_keys(embeddings, embeddings, cut, "cosine")[kept],
        float64_keys(embeddings, embeddings, full, "cosine")[kept], rtol=2e-6, atol=1e-6,
    )


@pytest.mark.parametrize("distance", ["cosine", "dot_product", "euclidean"])
def test_leave_one_out_queries_reuse_the_gallery_rounding_exactly(distance):
    embeddings = clustered(200, 72, 4, 0.3, seed=6)
    queries, key = prepare_ranking(embeddings, None, distance, None)
    screen = BFloat16Screen(key.gallery, key.squared_norms)
    rows = slice(50, 120)
    prepared = key.prepare(queries)[rows]
    assert torch.equal(key.gallery[rows] * key.query_scale, prepared)
    for reused, computed in zip(screen.scaled_rows(rows, key.query_scale), screening._rounded(prepared)):
        torch.testing.assert_close(reused, computed, rtol=1e-6, atol=0)


def test_screening_is_chosen_only_where_it_pays():
    gallery = F.normalize(torch.randn(2000, 128), dim=1)
    amx = bool(torch.cpu._is_amx_tile_supported())
    assert screening.screening_pays(gallery, 10) == amx
    assert not screening.screening_pays(gallery[:, :16], 10)  # few dimensions: products are cheap
    assert not screening.screening_pays(gallery[:150], 10)  # candidates not few next to the gallery
    assert not screening.screening_pays(gallery.double(), 10)
    assert not screening.screening_pays(gallery * 1e20, 10)  # keys near bfloat16/float32 overflow
