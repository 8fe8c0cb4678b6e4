"""The head's weights after every epoch, so the report can draw the unseen-class curve after training.

Training never looks at the unseen classes; ``evaluate`` replays these snapshots over them afterwards,
which costs one pass of the (small) head per epoch, not a re-encoding.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from safetensors.torch import load, save

from simtune.atomic import write_bytes


def snapshot_path(folder: Path, epoch: int) -> Path:
    return folder / f"epoch-{epoch:03d}.safetensors"


def saved_epochs(folder: Path) -> list[int]:
    return sorted(int(p.stem.split("-")[1]) for p in folder.glob("epoch-*.safetensors"))


def load_snapshot(folder: Path, epoch: int) -> dict:
    return load(snapshot_path(folder, epoch).read_bytes())


class HeadSnapshots(pl.Callback):
    """Writes ``folder/epoch-NNN.safetensors`` (the head's state dict) at the end of each training epoch."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:  # DDP: every process holds the same head; one writes it
            return
        state = {k: v.detach().cpu().contiguous() for k, v in pl_module.model.head.state_dict().items()}
        write_bytes(snapshot_path(self.folder, trainer.current_epoch + 1), save(state))
