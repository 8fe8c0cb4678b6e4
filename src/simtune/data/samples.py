"""The two kinds of training sample. Objects are whatever the encoders' collate functions accept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class SimilarityGroupSample:
    """An object and the id of the group (class) it belongs to; same group = similar."""

    obj: Any
    group: int


@dataclass
class SimilarityPairSample:
    """Two objects and how similar they are (``score``); ``subgroup`` marks objects that must never be
    used as negatives for each other (0 = no subgroup)."""

    obj_a: Any
    obj_b: Any
    score: float = 1.0
    subgroup: int = 0
