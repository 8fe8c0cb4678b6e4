"""What ``fit`` checks about the trainer before Lightning runs: mistakes a Quaterion user makes, caught
with a message that names the simtune form instead of an error from deep inside Lightning."""

from __future__ import annotations

from typing import Any

LOSS_KEYS = ("train_loss", "validation_loss")


def check_trainer(trainer: Any) -> None:
    """simtune is built on ``lightning.pytorch``; the standalone ``pytorch_lightning`` package's Trainer
    and callbacks are different classes that Lightning rejects with a message about LightningModule."""
    if _from_pytorch_lightning(trainer):
        raise TypeError(
            "trainer is a pytorch_lightning.Trainer, but simtune is built on lightning.pytorch: "
            "`import lightning.pytorch as pl` and pass pl.Trainer(...) (or trainer=None for simtune's default)"
        )
    foreign = [
        type(callback).__name__ for callback in getattr(trainer, "callbacks", []) if _from_pytorch_lightning(callback)
    ]
    if foreign:
        raise TypeError(
            f"trainer callbacks {foreign} come from pytorch_lightning, but simtune is built on lightning.pytorch: "
            "import them from lightning.pytorch.callbacks"
        )


def check_monitored_keys(trainable_model: Any, trainer: Any) -> None:
    """A callback monitoring Quaterion's key for an attached metric (``"rrp_validation"``) would fail at
    the end of the first epoch; simtune logs it as ``"validation_rrp"``."""
    logged = {*LOSS_KEYS, *(name for metric in trainable_model.attached_metrics for name in metric.names)}
    for callback in getattr(trainer, "callbacks", []):
        monitor = getattr(callback, "monitor", None)
        if not isinstance(monitor, str) or monitor in logged:
            continue
        for metric in trainable_model.attached_metrics:
            for key, name in zip(metric.keys.values(), metric.names):
                if monitor in (f"{key}_validation", f"{key}_train"):
                    raise ValueError(
                        f"{type(callback).__name__}(monitor={monitor!r}) uses Quaterion's key; simtune logs the "
                        f"attached metric {key!r} as {name!r} (once per validation epoch): monitor={name!r}"
                    )


def _from_pytorch_lightning(value: Any) -> bool:
    return any(cls.__module__.split(".")[0] == "pytorch_lightning" for cls in type(value).__mro__)
