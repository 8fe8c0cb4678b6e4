import json

import pytest
import torch
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners

from simtune.losses import PytorchMetricLearningLoss


def batch():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(16, 6, generator=generator), torch.arange(4).repeat_interleave(4)


def test_by_name_equals_calling_pytorch_metric_learning_directly():
    embeddings, groups = batch()
    wrapped = PytorchMetricLearningLoss("TripletMarginLoss", "BatchHardMiner", loss_kwargs={"margin": 0.3})
    miner, loss = pml_miners.BatchHardMiner(), pml_losses.TripletMarginLoss(margin=0.3)
    expected = loss(embeddings, groups, miner(embeddings, groups))
    assert expected > 0
    assert torch.equal(wrapped(embeddings, groups), expected)
    assert not torch.equal(
        PytorchMetricLearningLoss("TripletMarginLoss", loss_kwargs={"margin": 0.3})(embeddings, groups), expected
    )


def test_config_round_trips_through_json_when_built_by_name():
    loss = PytorchMetricLearningLoss("MultiSimilarityLoss", "MultiSimilarityMiner", {"alpha": 3.0}, {"epsilon": 0.2})
    config = json.loads(json.dumps(loss.get_config()))
    rebuilt = PytorchMetricLearningLoss(**config)
    assert rebuilt.get_config() == config
    assert rebuilt.loss.alpha == 3.0 and rebuilt.miner.epsilon == 0.2
    embeddings, groups = batch()
    assert torch.equal(rebuilt(embeddings, groups), loss(embeddings, groups))


def test_instances_work_but_have_no_json_config():
    embeddings, groups = batch()
    loss = PytorchMetricLearningLoss(pml_losses.ContrastiveLoss())
    assert torch.equal(loss(embeddings, groups), pml_losses.ContrastiveLoss()(embeddings, groups))
    with pytest.raises(ValueError, match="by class name"):
        loss.get_config()


def test_parameters_of_the_wrapped_loss_are_trainable():
    loss = PytorchMetricLearningLoss("ArcFaceLoss", loss_kwargs={"num_classes": 4, "embedding_size": 6})
    assert [id(p) for p in loss.trainable_parameters] == [id(loss.loss.W)]
    embeddings, groups = batch()
    loss(embeddings, groups).backward()
    assert loss.loss.W.grad is not None and loss.loss.W.grad.any()


def test_unknown_names_are_named():
    with pytest.raises(ValueError, match="no loss named 'TripletLos'"):
        PytorchMetricLearningLoss("TripletLos")
    with pytest.raises(ValueError, match="no miner named 'Hard'"):
        PytorchMetricLearningLoss("TripletMarginLoss", "Hard")
