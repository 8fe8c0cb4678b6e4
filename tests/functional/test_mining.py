import pytest
import torch

from simtune.functional.mining import (
    hardest_negative,
    hardest_positive,
    margin_violation_sum,
    negative_mask,
    positive_mask,
    semi_hard_negative,
)


def batch(seed, size=10):
    generator = torch.Generator().manual_seed(seed)
    points = torch.randn(size, 3, generator=generator, dtype=torch.float64)
    distances = torch.cdist(points, points)
    groups = torch.randint(0, 3, (size,), generator=generator)
    return distances, groups


def test_masks_follow_groups_and_exclude_the_diagonal():
    groups = torch.tensor([0, 0, 1, 2, 1])
    positives, negatives = positive_mask(groups), negative_mask(groups)
    for a in range(5):
        for b in range(5):
            assert positives[a, b] == (a != b and groups[a] == groups[b])
            assert negatives[a, b] == (groups[a] != groups[b])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hardest_positive_and_negative_match_loops(seed):
    distances, groups = batch(seed)
    positives, negatives = positive_mask(groups), negative_mask(groups)
    farthest, has_positive = hardest_positive(distances, positives)
    closest, has_negative = hardest_negative(distances, negatives)
    for a in range(len(groups)):
        pos = [distances[a, p] for p in range(len(groups)) if positives[a, p]]
        neg = [distances[a, n] for n in range(len(groups)) if negatives[a, n]]
        assert has_positive[a] == bool(pos) and has_negative[a] == bool(neg)
        assert farthest[a] == (max(pos) if pos else 0) and closest[a] == (min(neg) if neg else 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_semi_hard_negative_matches_loops(seed):
    distances, groups = batch(seed)
    positives, negatives = positive_mask(groups), negative_mask(groups)
    values, found = semi_hard_negative(distances, positives, negatives)
    size = len(groups)
    assert found.any() and (positives & ~found).any()  # both cases occur in these batches
    for a in range(size):
        for p in range(size):
            farther = [distances[a, n] for n in range(size) if negatives[a, n] and distances[a, n] > distances[a, p]]
            expected_found = bool(positives[a, p]) and bool(farther)
            assert found[a, p] == expected_found
            if expected_found:
                assert values[a, p] == min(farther)


@pytest.mark.parametrize("margin", [0.0, 0.5, 5.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_margin_violation_sum_matches_enumerating_triplets(margin, seed):
    distances, groups = batch(seed)
    distances.requires_grad_(True)
    positives, negatives = positive_mask(groups), negative_mask(groups)
    total, count = margin_violation_sum(distances, positives, negatives, margin)
    expected_total, expected_count = 0.0, 0
    size = len(groups)
    for a in range(size):
        for p in range(size):
            for n in range(size):
                if positives[a, p] and negatives[a, n]:
                    violation = distances[a, p] - distances[a, n] + margin
                    if violation > 0:
                        expected_total, expected_count = expected_total + violation, expected_count + 1
    assert count == expected_count > 0
    (grad,) = torch.autograd.grad(total, distances)
    (expected_grad,) = torch.autograd.grad(expected_total, distances)
    assert torch.allclose(total, expected_total) and torch.allclose(grad, expected_grad)


def test_nothing_to_mine_gives_zero_with_a_finite_gradient():
    distances = torch.rand(4, 4, requires_grad=True)
    groups = torch.arange(4)  # no positives at all
    positives, negatives = positive_mask(groups), negative_mask(groups)
    total, count = margin_violation_sum(distances, positives, negatives, 1.0)
    values, found = semi_hard_negative(distances, positives, negatives)
    (total + values.sum()).backward()
    assert total == 0 and count == 0 and not found.any() and torch.isfinite(distances.grad).all()
