"""Encode with frozen encoders once, train on the stored embeddings; persisted and fingerprinted."""

from simtune.train.cache.config import CacheConfig, CacheType
from simtune.train.cache.encoder_cache import EncoderCache

__all__ = ["CacheConfig", "CacheType", "EncoderCache"]
