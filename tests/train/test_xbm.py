import pytest
import torch

from simtune.train import XbmConfig
from simtune.train.xbm import CrossBatchMemory

from train_fakes import TinyTrainable


def test_memory_is_a_ring_of_the_latest_rows():
    memory = CrossBatchMemory(XbmConfig(buffer_size=10, start_iteration=0), embedding_size=2)
    batches = [torch.full((4, 2), float(i)) for i in range(3)]
    for i, batch in enumerate(batches):
        memory.enqueue(batch, torch.full((4,), i))
    embeddings, groups = memory.contents()
    assert len(embeddings) == 10
    assert sorted(groups.tolist()) == [0, 0, 1, 1, 1, 1, 2, 2, 2, 2]  # the oldest two rows were overwritten
    assert torch.equal(embeddings[:, 0].long(), groups)


def test_memory_term_starts_late_and_gradients_reach_only_the_batch():
    model = TinyTrainable(xbm=XbmConfig(buffer_size=32, start_iteration=0, weight=0.5))
    groups = torch.tensor([0, 0, 1, 1])
    first = torch.randn(4, 8)
    assert float(model._xbm_loss(first, groups)) == 0.0  # empty memory
    second = torch.randn(4, 8, requires_grad=True)
    term = model._xbm_loss(second, groups)
    expected = 0.5 * model.loss(torch.cat([second, first]), torch.cat([groups, groups]))
    torch.testing.assert_close(term, expected)
    term.backward()
    assert second.grad is not None and model.xbm.embeddings.grad is None

    late = TinyTrainable(xbm=XbmConfig(buffer_size=32, start_iteration=5))
    late._xbm_loss(first, groups)
    assert float(late._xbm_loss(second, groups)) == 0.0  # global_step 0 < start_iteration


@pytest.mark.parametrize("kwargs", [{"buffer_size": 0}, {"start_iteration": -1}, {"weight": -1.0}])
def test_bad_config_is_named(kwargs):
    with pytest.raises(ValueError, match=f"XbmConfig.{next(iter(kwargs))}"):
        XbmConfig(**kwargs)


def test_xbm_needs_a_group_loss():
    with pytest.raises(ValueError, match="configure_xbm\\(\\) needs a GroupLoss"):
        TinyTrainable(pairs=True, xbm=XbmConfig())
