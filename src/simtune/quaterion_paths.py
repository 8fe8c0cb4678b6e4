"""Quaterion's module paths with ``quaterion`` replaced by ``simtune``, where simtune's module is named
otherwise: importing one fails with the simtune module to import instead, not a bare "No module named".

(Paths simtune keeps, such as ``simtune.eval.attached_metric`` or ``simtune.eval.samplers.pair_sampler``,
import as they are.)
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from typing import Any

RENAMED = {
    "simtune.loss": ("simtune.losses", "MultipleNegativesRankingLoss, TripletLoss, ContrastiveLoss, ..."),
    "simtune.dataset": ("simtune.data", "PairsSimilarityDataLoader, SimilarityPairSample, ..."),
    "simtune.eval.pair": ("simtune.eval", "RetrievalPrecision, RetrievalReciprocalRank (or PrecisionAtK, ...)"),
    "simtune.eval.group": ("simtune.eval", "RetrievalRPrecision, MeanAveragePrecisionAtR, ..."),
    "simtune.main": ("simtune", "fit, evaluate"),
    "simtune_models": ("simtune.models", "SimilarityModel; simtune.models.heads, simtune.models.encoders"),
}


class QuaterionPathFinder(importlib.abc.MetaPathFinder):
    """Consulted last, only for names no other finder found. A module below a renamed path needs no entry:
    Python imports its parent first, which fails here naming its simtune module."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: Any = None) -> None:
        new = RENAMED.get(fullname)
        if new is None:
            return None
        module, names = new
        raise ModuleNotFoundError(
            f"No module named {fullname!r}: Quaterion's {fullname.replace('simtune', 'quaterion', 1)} is "
            f"{module} in simtune (from {module} import {names}); see docs/porting-from-quaterion.md",
            name=fullname,
        )


def install() -> None:
    if not any(isinstance(finder, QuaterionPathFinder) for finder in sys.meta_path):
        sys.meta_path.append(QuaterionPathFinder())
