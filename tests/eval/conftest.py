from collections.abc import Sequence

import numpy as np
import pytest
import torch

from simtune.data.samples import SimilarityGroupSample


class LookupModel:
    """Implements SimilarityModel.encode for tests: an object's embedding is looked up, not computed."""

    def __init__(self, embedding_of):
        self.embedding_of = embedding_of
        self.calls = []

    def encode(
        self,
        objects: Sequence,
        batch_size: int = 32,
        to_numpy: bool = True,
        progress: bool = False,
        num_workers: int = 0,
    ):
        self.calls.append(dict(count=len(objects), batch_size=batch_size, progress=progress))
        embeddings = torch.tensor(np.array([self.embedding_of(obj) for obj in objects]), dtype=torch.float32)
        return embeddings.numpy() if to_numpy else embeddings


@pytest.fixture
def lookup_model():
    """``lookup_model(embedding_of)``: a fake SimilarityModel that looks embeddings up."""
    return LookupModel


@pytest.fixture
def point_model():
    """Objects are coordinates (tuples); the embedding is the coordinates."""
    return LookupModel(lambda obj: list(obj))


def groups_dataset(points_and_groups):
    return [SimilarityGroupSample(obj=tuple(point), group=group) for point, group in points_and_groups]


@pytest.fixture
def one_query_evaluation(point_model):
    """Values of one query at (0,) in group 0 against a gallery ranked B, A, A, B (euclidean)."""
    from simtune.eval import Evaluator, evaluate

    query = groups_dataset([((0.0,), 0)])
    gallery = groups_dataset([((1.0,), 1), ((2.0,), 0), ((3.0,), 0), ((10.0,), 1)])

    def run(metric):
        return evaluate(Evaluator([metric], distance="euclidean"), query, point_model, gallery_dataset=gallery)

    return run
