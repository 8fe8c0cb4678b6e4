"""Training: TrainableModel (Lightning), ``fit``, the frozen-encoder cache and cross-batch memory."""

from simtune.train.cache import (
    CacheConfig,
    CachedEmbeddings,
    CacheType,
    encode_or_load,
    encode_or_load_together,
    load_encoded,
    store_encoded,
)
from simtune.train.fit import default_trainer, fit
from simtune.train.lightning_notices import quiet_lightning_notices
from simtune.train.restore_best import RestoreBestWeights
from simtune.train.trainable_model import TrainableModel
from simtune.train.xbm import XbmConfig

quiet_lightning_notices()

__all__ = [
    "CacheConfig",
    "CacheType",
    "CachedEmbeddings",
    "RestoreBestWeights",
    "TrainableModel",
    "XbmConfig",
    "default_trainer",
    "encode_or_load",
    "encode_or_load_together",
    "fit",
    "load_encoded",
    "store_encoded",
]
