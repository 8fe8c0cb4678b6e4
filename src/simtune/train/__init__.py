"""Training: TrainableModel (Lightning), ``fit``, the frozen-encoder cache and cross-batch memory."""

from simtune.train.cache import CacheConfig, CacheType
from simtune.train.fit import fit
from simtune.train.trainable_model import TrainableModel
from simtune.train.xbm import XbmConfig

__all__ = ["TrainableModel", "fit", "CacheConfig", "CacheType", "XbmConfig"]
