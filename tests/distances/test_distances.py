"""Every distance: its four views agree with each other and with a direct definition."""

import pytest
import torch

from simtune.distances import DISTANCES, Cosine, DotProduct, Euclidean, Manhattan, get_distance

torch.manual_seed(0)
X, Y = torch.randn(5, 7, dtype=torch.float64), torch.randn(4, 7, dtype=torch.float64)

REFERENCE_DISTANCE = {
    "cosine": lambda x, y: 1 - x @ y / (x.norm() * y.norm()),
    "dot_product": lambda x, y: -(x @ y),
    "euclidean": lambda x, y: ((x - y) ** 2).sum().sqrt(),
    "manhattan": lambda x, y: (x - y).abs().sum(),
}


@pytest.mark.parametrize("name", DISTANCES)
def test_pairwise_forms_equal_the_matrix_forms(name):
    distance = get_distance(name)
    rows, cols = torch.meshgrid(torch.arange(len(X)), torch.arange(len(Y)), indexing="ij")
    x, y = X[rows.flatten()], Y[cols.flatten()]
    torch.testing.assert_close(distance.distance(x, y).view(5, 4), distance.distance_matrix(X, Y))
    torch.testing.assert_close(distance.similarity(x, y).view(5, 4), distance.similarity_matrix(X, Y))


@pytest.mark.parametrize("name", DISTANCES)
def test_distance_matches_its_definition(name):
    expected = torch.stack([torch.stack([REFERENCE_DISTANCE[name](x, y) for y in Y]) for x in X])
    torch.testing.assert_close(get_distance(name).distance_matrix(X, Y), expected)


@pytest.mark.parametrize("name", DISTANCES)
def test_similarity_ranks_like_negative_distance(name):
    distance = get_distance(name)
    by_similarity = distance.similarity_matrix(X, Y).argsort(dim=1, descending=True)
    by_distance = distance.distance_matrix(X, Y).argsort(dim=1)
    assert torch.equal(by_similarity, by_distance)


@pytest.mark.parametrize("name", DISTANCES)
def test_single_argument_matrix_is_self_distance(name):
    distance = get_distance(name)
    torch.testing.assert_close(distance.distance_matrix(X), distance.distance_matrix(X, X))
    torch.testing.assert_close(distance.similarity_matrix(X), distance.similarity_matrix(X, X))


@pytest.mark.parametrize("name", ["euclidean", "manhattan", "cosine"])
def test_identical_vectors_are_at_distance_zero_with_finite_gradients(name):
    x = X[:3].clone().requires_grad_(True)
    matrix = get_distance(name).distance_matrix(x, x)
    torch.testing.assert_close(
        matrix.diagonal(), torch.zeros(3, dtype=torch.float64), atol=1e-5, rtol=0
    )  # safe_sqrt floors at 1e-6
    matrix.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_bounded_similarities():
    assert (Cosine().similarity_matrix(X, Y).abs() <= 1 + 1e-12).all()
    for distance in (Euclidean(), Manhattan()):
        similarity = distance.similarity_matrix(X, Y)
        assert ((similarity > 0) & (similarity <= 1)).all()
    assert torch.equal(DotProduct().similarity_matrix(X, Y), X @ Y.T)


def test_get_distance_by_name_or_instance():
    cosine = Cosine()
    assert get_distance(cosine) is cosine and isinstance(get_distance("manhattan"), Manhattan)
    with pytest.raises(ValueError, match="unknown distance 'hamming'.*cosine"):
        get_distance("hamming")
