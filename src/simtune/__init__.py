"""simtune: similarity learning — tune embedding models, evaluate retrieval, search.

Importing ``simtune`` is cheap: the training entry points (``fit``, ``evaluate``) are loaded lazily so
an inference service that only needs :mod:`simtune.models` never imports Lightning.
"""

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "fit": ("simtune.train.fit", "fit"),
    "evaluate": ("simtune.eval.evaluator", "evaluate"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'simtune' has no attribute {name!r}")
