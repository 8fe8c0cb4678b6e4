"""Training: TrainableModel (Lightning), ``fit``, the frozen-encoder cache and cross-batch memory."""

from simtune.train.cache import (
    CacheConfig,
    CachedEmbeddings,
    CacheType,
    encode_or_load,
    load_encoded,
    store_encoded,
)
from simtune.train.fit import default_trainer, fit
from simtune.train.trainable_model import TrainableModel
from simtune.train.xbm import XbmConfig

__all__ = [
    "CacheConfig",
    "CacheType",
    "CachedEmbeddings",
    "TrainableModel",
    "XbmConfig",
    "default_trainer",
    "encode_or_load",
    "fit",
    "load_encoded",
    "store_encoded",
]
