"""A cache fingerprint: everything that changes an object's cached embedding, hashed per component.

Components are kept apart (not one opaque digest) so a mismatch can say *what* changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from simtune.data.samples import SimilarityGroupSample, SimilarityPairSample

FORMAT_VERSION = 2  # 2: chunked, checksummed, memory-mapped entries (storage.py)


def _sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def weights_hash(module: nn.Module) -> str:
    """Hash of every parameter and buffer (BatchNorm statistics included), by name, dtype and shape."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def encoder_identity(encoder: nn.Module) -> dict[str, Any]:
    cls = type(encoder)
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "config": encoder.get_config(),
        "preprocessing": encoder.preprocessing_config(),
    }


def _path_key(obj: Any) -> str | None:
    """A file's path, size and mtime: an edited or replaced file changes the key."""
    if isinstance(obj, (str, Path)) and os.path.isfile(obj):
        stat = os.stat(obj)
        return f"{os.path.abspath(obj)}|{stat.st_size}|{stat.st_mtime_ns}"
    return None


def _object_key(obj: Any, index: int) -> str:
    """A file by path, size and mtime; a text by itself; anything else only by its position."""
    if (key := _path_key(obj)) is not None:
        return key
    return f"text:{obj}" if isinstance(obj, str) else str(index)


def _sample_key(sample: Any, index: int) -> str:
    if isinstance(sample, SimilarityGroupSample):
        return f"{_object_key(sample.obj, index)}|{sample.group}"
    if isinstance(sample, SimilarityPairSample):
        a, b = _object_key(sample.obj_a, index), _object_key(sample.obj_b, index)
        return f"{a}|{b}|{sample.score}|{sample.subgroup}"
    return _object_key(sample, index)


def has_item_keys(dataset: Dataset) -> bool:
    """Whether the fingerprint sees item contents (``cache_key`` or a plain list of samples), not just indices."""
    return callable(getattr(dataset, "cache_key", None)) or isinstance(dataset, (list, tuple))


def dataset_keys_hash(dataset: Dataset) -> str:
    """Per-item keys: ``dataset.cache_key(i)`` when the dataset defines it (e.g. file path + label);
    items of a plain list/tuple (samples or raw objects) are keyed by their file path (size, mtime) or
    text, and target;
    any other dataset falls back to the item index, so only its length protects the cache."""
    n = len(dataset)
    digest = hashlib.sha256(f"len={n}|".encode())
    if callable(getattr(dataset, "cache_key", None)):
        keys = (str(dataset.cache_key(i)) for i in range(n))
    elif isinstance(dataset, (list, tuple)):
        keys = (_sample_key(sample, i) for i, sample in enumerate(dataset))
    else:
        keys = (str(i) for i in range(n))
    for key in keys:
        digest.update(key.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def cache_fingerprint(
    encoders: Mapping[str, nn.Module], dataset: Dataset, views: int, dtype: str, precision: str = "float32"
) -> dict[str, str]:
    """Component name -> hash. Two caches are interchangeable iff all components are equal. ``precision``:
    the arithmetic the encoders run in (resolved, as ``simtune.encoding.precision_name`` names it), a
    component unless float32, so float32 entries written before it was recorded stay valid."""
    components = {"format": _sha(json.dumps({"version": FORMAT_VERSION, "views": views})), "dtype": _sha(dtype)}
    if precision != "float32":
        components["precision"] = _sha(precision)
    for name, encoder in sorted(encoders.items()):
        components[f"encoder {name!r} identity"] = _sha(
            json.dumps(encoder_identity(encoder), sort_keys=True, default=str)
        )
        components[f"encoder {name!r} weights"] = weights_hash(encoder)
    components["dataset length"] = _sha(str(len(dataset)))
    components["dataset keys"] = dataset_keys_hash(dataset)
    return components


def fingerprint_digest(components: Mapping[str, str]) -> str:
    return _sha(json.dumps(dict(sorted(components.items()))))


def describe_mismatch(old: Mapping[str, str], new: Mapping[str, str]) -> str:
    """'encoder 'default' weights, dataset keys' — the components that differ, in one phrase."""
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return ", ".join(changed) or "nothing"
