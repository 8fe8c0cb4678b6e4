"""Run as a script: ``python ddp_fit.py SCENARIO DEVICES OUT_JSON ROOT``. Trains the tiny model on
``DEVICES`` CPU processes (``strategy="ddp"``, gloo) at the same global batch and writes the final
validation metrics plus what the loss and the metric saw, and the trained head's weights beside it
(``OUT_JSON`` with the suffix ``.safetensors``). Lightning re-runs this script for rank 1.

Scenarios:
- ``cached``: frozen encoder from the cache, shuffled batches (Lightning's DistributedSampler).
- ``uncached``: trainable encoder, no cache: Lightning re-creates the loaders with a DistributedSampler,
  which pads the 35-sample validation set with a repeated sample.
- ``balanced``: cached frozen encoder (under DDP each rank encodes half the items), ClassBalancedBatchSampler
  (sharding itself, so ``use_distributed_sampler=False`` and validation unsharded on every process) and
  cross-batch memory.
"""

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_fakes import GroupImages, TinyTrainable  # noqa: E402

import simtune  # noqa: E402
from simtune.data import ClassBalancedBatchSampler, GroupSimilarityDataLoader  # noqa: E402
from simtune.eval.attached_metric import AttachedMetric  # noqa: E402
from simtune.eval.metrics import RetrievalRPrecision  # noqa: E402
from simtune.train import CacheConfig, XbmConfig, default_trainer  # noqa: E402

GLOBAL_BATCH = 16
VALIDATION_CLASSES, VALIDATION_PER_CLASS = 7, 5  # 35 samples: odd, so a DistributedSampler pads


class CountingMetric(AttachedMetric):
    """Counts the rows it was given this epoch: each validation sample exactly once."""

    def reset(self) -> None:
        super().reset()
        self.rows = 0

    def update(self, embeddings, groups) -> None:
        super().update(embeddings, groups)
        self.rows += len(groups)


class Spy(TinyTrainable):
    """Records the largest batch the training loss saw and whether a gathered batch repeated a sample."""

    largest_loss_batch = 0
    repeated_train_sample = False
    validation_rows = 0

    def configure_metrics(self):
        return CountingMetric([RetrievalRPrecision()])

    def training_step(self, batch, batch_idx):
        indices = self.all_gather(batch[1]["indices"]).reshape(-1)
        self.repeated_train_sample |= len(indices.unique()) < len(indices)
        self.largest_loss_batch = max(self.largest_loss_batch, len(indices))
        return super().training_step(batch, batch_idx)

    def on_validation_epoch_end(self):
        self.validation_rows = self.attached_metrics[0].rows
        super().on_validation_epoch_end()


def main(scenario: str, devices: int, out: Path, root: Path) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0)
    train_data = GroupImages(num_classes=8, per_class=16, seed=0)
    val_data = GroupImages(num_classes=VALIDATION_CLASSES, per_class=VALIDATION_PER_CLASS, seed=100)
    val = GroupSimilarityDataLoader(val_data, batch_size=8)
    if scenario == "balanced":
        model = Spy(cache=CacheConfig(), lr=1e-2, xbm=XbmConfig(buffer_size=48, start_iteration=2, weight=0.5))
        labels = train_data.groups.tolist()
        sampler = ClassBalancedBatchSampler(labels, classes_per_batch=8 // devices, samples_per_class=2, seed=0)
        train = GroupSimilarityDataLoader(train_data, batch_sampler=sampler)
    else:
        model = Spy(cache=CacheConfig() if scenario == "cached" else None, trainable_encoder=scenario == "uncached")
        train = GroupSimilarityDataLoader(train_data, batch_size=GLOBAL_BATCH // devices, shuffle=True, drop_last=True)
    trainer = default_trainer(
        has_validation=True,
        max_epochs=8,
        root_dir=root,
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        use_distributed_sampler=scenario != "balanced",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=[],
    )
    simtune.fit(model, trainer, train, val)
    if trainer.is_global_zero:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        metrics |= {
            "largest_loss_batch": model.largest_loss_batch,
            "repeated_train_sample": bool(model.repeated_train_sample),
            "validation_rows": model.validation_rows,
            "validation_samples": len(val_data),
            "world_size": trainer.world_size,
        }
        out.write_text(json.dumps(metrics))
        head = {key: value.detach().contiguous() for key, value in model.model.head.state_dict().items()}
        save_file(head, str(out.with_suffix(".safetensors")))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
