"""Encode with frozen encoders once, train on the stored embeddings; persisted and fingerprinted.

``encode_or_load`` is the public entry point (evaluation, indexing, your own scripts); ``fit`` reaches
the same cache through ``TrainableModel.configure_caches`` returning a ``CacheConfig``. Outputs computed
elsewhere go in through ``store_encoded``; ``load_encoded`` reads an entry without ever encoding.
"""

from simtune.train.cache.config import CacheConfig, CacheType
from simtune.train.cache.encode_or_load import encode_or_load, encode_or_load_together, load_encoded
from simtune.train.cache.encoder_cache import EncoderCache
from simtune.train.cache.storage import CachedEmbeddings
from simtune.train.cache.store_encoded import store_encoded

__all__ = [
    "CacheConfig",
    "CacheType",
    "CachedEmbeddings",
    "EncoderCache",
    "encode_or_load",
    "encode_or_load_together",
    "load_encoded",
    "store_encoded",
]
