"""What search needs from a model: ``SimilarityModel`` satisfies it; tests can use something tiny."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np


class Embedder(Protocol):
    embedding_size: int

    def encode(
        self, objects: Sequence[Any], batch_size: int = 32, to_numpy: bool = True, progress: bool = False
    ) -> np.ndarray: ...

    def fingerprint(self) -> str: ...
