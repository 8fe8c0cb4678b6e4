"""The losses ``--loss`` may name.

Proxy losses own one proxy per training class; validation and unseen classes are scored by retrieval
alone, so any loss works with the validation protocol.
"""

from __future__ import annotations

from collections.abc import Callable

from simtune.losses import GroupLoss, MultiSimilarityLoss, ProxyAnchorLoss, TripletLoss

# loss -> builder(embedding size, training classes)
LOSSES: dict[str, Callable[[int, int], GroupLoss]] = {
    "multi-similarity": lambda size, classes: MultiSimilarityLoss(),
    "triplet": lambda size, classes: TripletLoss(margin=0.2, mining="semi_hard"),
    "proxy-anchor": lambda size, classes: ProxyAnchorLoss(classes, size),
}
