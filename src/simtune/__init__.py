"""simtune: similarity learning — tune embedding models, evaluate retrieval, search.

Importing ``simtune`` is cheap: ``from simtune import TrainableModel, SimilarityModel, fit, evaluate``
loads each name on first use, so an inference service that only needs :mod:`simtune.models` never
imports Lightning.
"""

from typing import Any

from simtune import quaterion_paths

__version__ = "0.1.0"
quaterion_paths.install()

_LAZY = {
    "fit": ("simtune.train.fit", "fit"),
    "evaluate": ("simtune.eval.evaluator", "evaluate"),
    "TrainableModel": ("simtune.train.trainable_model", "TrainableModel"),
    "SimilarityModel": ("simtune.models.similarity_model", "SimilarityModel"),
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name == "Quaterion":
        raise AttributeError(
            "simtune has no Quaterion class: Quaterion.fit(...) is simtune.fit(...) and Quaterion.evaluate(...) is "
            "simtune.evaluate(...), with the same arguments (docs/porting-from-quaterion.md)"
        )
    raise AttributeError(f"module 'simtune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
