import pytest
import torch
from train_fakes import TinyConvEncoder, TinyTrainable

from simtune.eval.attached_metric import AttachedMetric
from simtune.eval.metrics import PrecisionAtK
from simtune.losses.arcface_loss import ArcFaceLoss
from simtune.models.heads import LinearHead
from simtune.train import TrainableModel


class FrozenPlusTuned(TrainableModel):
    def configure_encoders(self):
        return {"frozen": TinyConvEncoder(), "tuned": TinyConvEncoder(trainable=True, seed=1)}

    def configure_head(self, input_embedding_size):
        assert input_embedding_size == 16  # both encoders' sizes
        return LinearHead(input_embedding_size, output_size=4)

    def configure_loss(self):
        return ArcFaceLoss(num_groups=3, embedding_size=4)


def test_default_optimizer_covers_head_trainable_encoders_and_loss_parameters():
    model = FrozenPlusTuned()
    optimizer = model.configure_optimizers()
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    expected = [*model.model.head.parameters(), *model.model.encoders["tuned"].parameters(), *model.loss.parameters()]
    assert optimized == {id(p) for p in expected}
    assert not optimized & {id(p) for p in model.model.encoders["frozen"].parameters()}
    assert not any(p.requires_grad for p in model.model.encoders["frozen"].parameters())


def test_model_property_is_the_servable_similarity_model():
    model = FrozenPlusTuned()
    features = {name: torch.randn(2, 3, 8, 8) for name in ("frozen", "tuned")}
    assert list(model.model.encoders) == ["frozen", "tuned"]
    torch.testing.assert_close(model(features), model.model(features))


class BadHead(FrozenPlusTuned):
    def configure_head(self, input_embedding_size):
        return torch.nn.Linear(input_embedding_size, 4)


class BadLoss(FrozenPlusTuned):
    def configure_loss(self):
        return torch.nn.MSELoss()


class BadEncoders(FrozenPlusTuned):
    def configure_encoders(self):
        return [TinyConvEncoder()]


class BadMetrics(TinyTrainable):
    def configure_metrics(self):
        return {"r_precision": 1}


@pytest.mark.parametrize(
    "cls, message",
    [
        (BadHead, "configure_head\\(\\) must return an EncoderHead, got Linear"),
        (BadLoss, "configure_loss\\(\\) must return a GroupLoss or PairwiseLoss, got MSELoss"),
        (BadEncoders, "configure_encoders\\(\\) must return an Encoder or a non-empty dict"),
        (BadMetrics, "configure_metrics\\(\\) must return AttachedMetric"),
    ],
)
def test_bad_hooks_are_named(cls, message):
    with pytest.raises(TypeError, match=message):
        cls()


def test_metrics_may_be_one_or_several():
    class Two(TinyTrainable):
        def configure_metrics(self):
            return [AttachedMetric([PrecisionAtK(1)]), AttachedMetric([PrecisionAtK(2)], prefix="other")]

    assert len(Two().attached_metrics) == 2 and len(TinyTrainable().attached_metrics) == 1
    assert TinyTrainable(metrics=False).attached_metrics == []
