"""Training: TrainableModel (Lightning), ``fit``, the frozen-encoder cache and cross-batch memory."""

from simtune.train.cache import CacheConfig, CacheType, CachedEmbeddings, encode_or_load
from simtune.train.fit import default_trainer, fit
from simtune.train.trainable_model import TrainableModel
from simtune.train.xbm import XbmConfig

__all__ = ["TrainableModel", "fit", "default_trainer", "CacheConfig", "CacheType", "CachedEmbeddings", "encode_or_load", "XbmConfig"]
