"""Tiny stand-ins for real encoders and data so training tests run in seconds on a CPU."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from simtune.data.samples import SimilarityGroupSample, SimilarityPairSample
from simtune.eval.attached_metric import AttachedMetric
from simtune.eval.metrics import RetrievalRPrecision
from simtune.losses.contrastive_loss import ContrastiveLoss
from simtune.losses.triplet_loss import TripletLoss
from simtune.models.encoders.base import Encoder
from simtune.models.heads.linear_head import LinearHead
from simtune.train import CacheConfig, TrainableModel, XbmConfig

IMAGE_SHAPE = (3, 8, 8)


class TinyConvEncoder(Encoder):
    """Conv + BatchNorm on 3x8x8 tensors; counts the items it encodes (``items_encoded``)."""

    def __init__(self, size: int = 8, trainable: bool = False, seed: int = 0):
        super().__init__()
        self.size = size
        self._trainable = trainable
        self.seed = seed
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = nn.Sequential(
                nn.Conv2d(3, 6, 3, padding=1),
                nn.BatchNorm2d(6),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(2),
                nn.Flatten(),
                nn.Linear(24, size),
            )
        self.items_encoded = 0
        self.requires_grad_(trainable)

    @property
    def trainable(self) -> bool:
        return self._trainable

    @property
    def embedding_size(self) -> int:
        return self.size

    def forward(self, batch: Tensor) -> Tensor:
        self.items_encoded += len(batch)
        return self.net(batch)

    def get_config(self) -> dict[str, Any]:
        return {"size": self.size, "trainable": self._trainable, "seed": self.seed}


def clustered_images(num_classes: int, per_class: int, seed: int = 0, noise: float = 0.4) -> tuple[Tensor, Tensor]:
    """Each class is a random prototype image plus noise: learnable, but not trivially separated."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(num_classes, *IMAGE_SHAPE, generator=generator)
    groups = torch.arange(num_classes).repeat_interleave(per_class)
    images = prototypes[groups] + noise * torch.randn(len(groups), *IMAGE_SHAPE, generator=generator)
    return images, groups


class GroupImages(Dataset):
    """Group samples over in-memory images; counts ``__getitem__`` calls in this process (``reads``)."""

    def __init__(self, num_classes: int = 6, per_class: int = 8, seed: int = 0):
        self.images, self.groups = clustered_images(num_classes, per_class, seed)
        self.reads = 0

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> SimilarityGroupSample:
        self.reads += 1
        return SimilarityGroupSample(self.images[index], int(self.groups[index]))

    def cache_key(self, index: int) -> str:
        return f"{float(self.images[index].sum()):.6f}|{int(self.groups[index])}"


class PairImages(Dataset):
    """Positive pairs (same class, score 1) and negative pairs (score 0) over clustered images."""

    def __init__(self, num_classes: int = 6, per_class: int = 6, seed: int = 0):
        images, groups = clustered_images(num_classes, per_class, seed)
        generator = torch.Generator().manual_seed(seed + 1)
        self.samples = []
        for i in range(len(groups)):
            j = int(torch.randint(len(groups), (1,), generator=generator))
            same = int((groups == groups[i]).nonzero()[torch.randint(per_class, (1,), generator=generator)])
            self.samples.append(SimilarityPairSample(images[i], images[same], 1.0, 0))
            self.samples.append(SimilarityPairSample(images[i], images[j], float(groups[i] == groups[j]), 0))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> SimilarityPairSample:
        return self.samples[index]


class TinyTrainable(TrainableModel):
    """Frozen or trainable tiny encoder (or one of each) + linear head; every optional hook is a switch."""

    def __init__(
        self,
        trainable_encoder: bool = False,
        cache: CacheConfig | None = None,
        pairs: bool = False,
        metrics: bool = True,
        xbm: XbmConfig | None = None,
        lr: float = 1e-2,
        mining: str = "all",
        two_encoders: bool = False,
    ):
        self.trainable_encoder = trainable_encoder
        self.cache = cache
        self.pairs = pairs
        self.metrics = metrics
        self.xbm_config = xbm
        self.lr = lr
        self.mining = mining
        self.two_encoders = two_encoders
        super().__init__()

    def configure_encoders(self) -> Encoder | dict[str, Encoder]:
        if self.two_encoders:
            return {"frozen": TinyConvEncoder(), "tuned": TinyConvEncoder(trainable=True, seed=1)}
        return TinyConvEncoder(trainable=self.trainable_encoder)

    def configure_head(self, input_embedding_size: int) -> LinearHead:
        return LinearHead(input_embedding_size, output_size=8)

    def configure_loss(self):
        return ContrastiveLoss() if self.pairs else TripletLoss(margin=0.3, mining=self.mining)

    def configure_optimizers(self):
        return torch.optim.Adam(self.trainable_parameters(), lr=self.lr)

    def configure_caches(self) -> CacheConfig | None:
        return self.cache

    def configure_metrics(self):
        return AttachedMetric([RetrievalRPrecision()]) if self.metrics else None

    def configure_xbm(self) -> XbmConfig | None:
        return self.xbm_config
