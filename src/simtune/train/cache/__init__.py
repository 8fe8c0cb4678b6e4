"""Encode with frozen encoders once, train on the stored embeddings; persisted and fingerprinted.

``encode_or_load`` is the public entry point (evaluation, indexing, your own scripts); ``fit`` reaches
the same cache through ``TrainableModel.configure_caches`` returning a ``CacheConfig``.
"""

from simtune.train.cache.config import CacheConfig, CacheType
from simtune.train.cache.encode_or_load import encode_or_load
from simtune.train.cache.encoder_cache import EncoderCache
from simtune.train.cache.storage import CachedEmbeddings

__all__ = ["CacheConfig", "CacheType", "CachedEmbeddings", "EncoderCache", "encode_or_load"]
