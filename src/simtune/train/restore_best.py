"""Keep the best epoch, not the last: early stopping stops *after* the monitored value stopped improving."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info


class RestoreBestWeights(pl.Callback):
    """At the end of ``fit``, loads the weights of the checkpoint that the trainer's ``ModelCheckpoint``
    (with a ``monitor``) kept as best, so ``save_servable`` and ``evaluate`` see the best epoch.

    ``default_trainer`` adds it whenever there is validation data; add it to a trainer of your own
    together with ``ModelCheckpoint(monitor=...)``. Without a monitored best checkpoint it does nothing.
    """

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        checkpoint = trainer.checkpoint_callback
        if checkpoint is None or checkpoint.monitor is None or not checkpoint.best_model_path:
            return
        pl_module.load_checkpoint_weights(checkpoint.best_model_path)
        score = checkpoint.best_model_score
        rank_zero_info(
            f"kept the best epoch's weights ({checkpoint.monitor} = {float(score):.4f}): {checkpoint.best_model_path}"
        )
