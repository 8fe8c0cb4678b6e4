"""The training history: per-epoch loss and validation metrics, and which epoch was kept."""

from __future__ import annotations

import json
from typing import Any

import lightning.pytorch as pl

SELECTION = "selection"  # the history entry saying which epoch was kept and why


class EpochHistory(pl.Callback):
    """Per-epoch train loss and validation-class metrics; kept in checkpoints to survive a resume."""

    def __init__(self) -> None:
        self.history: dict[str, list[tuple[int, float]]] = {}

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for name, value in trainer.callback_metrics.items():
            self.history.setdefault(name, []).append((trainer.current_epoch + 1, float(value)))

    def state_dict(self) -> dict[str, Any]:
        return {"history": json.dumps(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = {k: [tuple(p) for p in v] for k, v in json.loads(state_dict["history"]).items()}
