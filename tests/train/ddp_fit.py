"""Run as a script: ``python ddp_fit.py DEVICES OUT_JSON ROOT``. Trains the tiny model with a cache,
on ``DEVICES`` CPU processes (``strategy="ddp"``, gloo) at the same global batch, and writes the
final validation metrics plus the largest batch the loss saw. Lightning re-runs this script for rank 1."""

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import simtune  # noqa: E402
from simtune.data import GroupSimilarityDataLoader  # noqa: E402
from simtune.train import CacheConfig  # noqa: E402
from train_fakes import GroupImages, TinyTrainable  # noqa: E402

GLOBAL_BATCH = 16


class LossBatchSpy(TinyTrainable):
    """Records how many rows the training loss saw: the global batch when mining sees every process."""

    largest_loss_batch = 0

    def _compute_loss(self, embeddings, targets):
        if self.training:
            self.largest_loss_batch = max(self.largest_loss_batch, len(embeddings))
        return super()._compute_loss(embeddings, targets)


def main(devices: int, out: Path, root: Path) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0)
    model = LossBatchSpy(cache=CacheConfig(), lr=1e-2)
    train_data = GroupImages(num_classes=8, per_class=16, seed=0)
    train = GroupSimilarityDataLoader(train_data, batch_size=GLOBAL_BATCH // devices, shuffle=True, drop_last=True)
    val = GroupSimilarityDataLoader(GroupImages(num_classes=8, per_class=8, seed=100), batch_size=32 // devices)
    trainer = pl.Trainer(
        max_epochs=8, accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
        default_root_dir=root, logger=False, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False,
    )
    simtune.fit(model, trainer, train, val)
    if trainer.is_global_zero:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        metrics |= {"largest_loss_batch": model.largest_loss_batch, "world_size": trainer.world_size}
        out.write_text(json.dumps(metrics))


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
