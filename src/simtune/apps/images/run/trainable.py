"""The Lightning side of training: frozen backbones + the chosen head and loss, and the model it serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from simtune.apps.images.run.backbones import build_backbones
from simtune.apps.images.run.features import cache_config
from simtune.apps.images.run.heads import HEADS, LAST_CONV
from simtune.apps.images.run.losses import LOSSES
from simtune.apps.images.run.settings import TrainSettings
from simtune.losses import GroupLoss
from simtune.models import SimilarityModel
from simtune.models.encoders import Encoder
from simtune.models.heads import EfficientNetLiteTopHead, EncoderHead
from simtune.train import CacheConfig, TrainableModel

PRETRAINED_LR_FACTOR = 0.1


class ImagesTrainable(TrainableModel):
    """Frozen backbones + the chosen head and loss; AdamW with a one-cycle schedule over all steps."""

    def __init__(self, settings: TrainSettings, num_train_classes: int, steps_per_epoch: int, cache_dir: Path):
        self.settings = settings
        self.num_train_classes = num_train_classes
        self.steps_per_epoch = steps_per_epoch
        self.cache_dir = cache_dir
        super().__init__()

    def configure_encoders(self) -> dict[str, Encoder]:
        return training_encoders(self.settings)

    def configure_head(self, input_embedding_size: int) -> EncoderHead:
        build, _ = HEADS[self.settings.head]
        return build(input_embedding_size, self.settings.backbones[0], self.settings.tuned_blocks)

    def configure_loss(self) -> GroupLoss:
        build = LOSSES[self.settings.loss]
        return build(self.model.head.output_size, self.num_train_classes)

    def configure_optimizers(self) -> Any:
        rate = self.settings.learning_rate
        head = self.model.head
        pretrained = head.pretrained_parameters() if isinstance(head, EfficientNetLiteTopHead) else []
        slow = {id(p) for p in pretrained}
        groups = [{"params": [p for p in self.trainable_parameters() if id(p) not in slow], "lr": rate}]
        if pretrained:  # the pretrained convolution moves 10x slower than the new layers
            groups.append({"params": pretrained, "lr": rate * PRETRAINED_LR_FACTOR})
        optimizer = torch.optim.AdamW(groups, weight_decay=self.settings.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[group["lr"] for group in groups],
            total_steps=self.settings.epochs * self.steps_per_epoch,
            pct_start=0.1,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def configure_caches(self) -> CacheConfig:
        return cache_config(self.cache_dir, self.settings.workers)


def training_encoders(settings: TrainSettings) -> dict[str, Encoder]:
    """The frozen backbones ``settings`` train on (stopping below the last-conv head's layers)."""
    feature_maps = settings.head == LAST_CONV
    return build_backbones(settings.backbones, feature_maps=feature_maps, tuned_blocks=settings.tuned_blocks)


def servable_model(model: SimilarityModel, settings: TrainSettings) -> SimilarityModel:
    """The trained model as served: with ``flip_average``, the same weights embedding each image and its
    mirror and averaging the two (the last-conv head; other heads embed the image alone)."""
    if not settings.flip_average:
        return model
    encoders = {name: encoder.with_mirror(True) for name, encoder in model.encoders.items()}
    return SimilarityModel(encoders, model.head.with_views(2))
