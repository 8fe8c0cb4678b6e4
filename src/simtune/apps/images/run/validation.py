"""Validation-class retrieval after every epoch: what early stopping and the kept epoch are decided on.

The validation classes are carved out of the training half (see ``split``), so the unseen half never
steers training. Scoring applies the head being trained to the validation images' cached backbone
outputs and ranks them leave-one-out (every image queries all the others), as ``evaluate`` does.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from simtune.functional.retrieval import retrieval_metrics

MONITOR = "validation_r_precision"
METRICS = ("r_precision", "map_at_r", "precision_at_1")


@torch.inference_mode()
def head_outputs(head: nn.Module, backbone_outputs: Tensor, batch_size: int = 128) -> Tensor:
    """The head in eval mode over ``backbone_outputs`` (any float dtype, e.g. a float16 cache's rows), chunked
    and taken to float32 a chunk at a time (a feature-map head's activations are ~50x its input), each chunk's
    rows written into one table: small results kept between the chunks' large, freed activations pinned the
    allocator's heap and grew the process by a gigabyte over a collection. The head's own mode (training or
    not) is restored afterwards."""
    was_training = head.training
    head.eval()
    try:
        outputs = None
        for start in range(0, len(backbone_outputs), batch_size):
            result = head(backbone_outputs[start : start + batch_size].float())
            if outputs is None:
                outputs = result.new_empty((len(backbone_outputs), *result.shape[1:]))
            outputs[start : start + len(result)] = result
        return outputs if outputs is not None else head(backbone_outputs.float())
    finally:
        head.train(was_training)


def retrieval_scores(embeddings: Tensor, groups: Tensor, prefix: str) -> dict[str, float]:
    """Leave-one-out R-Precision, MAP@R and Precision@1, named ``{prefix}_{metric}``."""
    result = retrieval_metrics(embeddings, groups, metrics=METRICS)
    return {f"{prefix}_{name}": float(value) for name, value in result.metrics.items()}


def head_scorer(
    backbone_outputs: Tensor, groups: Tensor, prefix: str = "validation"
) -> Callable[[nn.Module], dict[str, float]]:
    """A function scoring a head on these images (for ``ValidationRetrieval``)."""
    return lambda head: retrieval_scores(head_outputs(head, backbone_outputs), groups, prefix)


class ValidationRetrieval(pl.Callback):
    """Logs ``score(head)`` at the end of every training epoch, before early stopping and checkpointing read
    it (list this callback ahead of ``EarlyStopping``; Lightning runs ``ModelCheckpoint`` last)."""

    def __init__(self, score: Callable[[nn.Module], dict[str, float]]):
        self.score = score

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for name, value in self.score(pl_module.model.head).items():
            # Under DDP every process scores the same head on all the validation images: the mean is that score.
            pl_module.log(name, value, on_step=False, on_epoch=True, sync_dist=True)
