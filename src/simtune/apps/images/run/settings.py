"""What defines a training run: ``TrainSettings``, saved to the run folder and compared on resume."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from simtune.apps.images.data.run_folder import Run
from simtune.apps.images.data.samples import MIRROR, ORIGINAL
from simtune.apps.images.run.heads import HEADS, LAST_CONV, LAST_CONV_TUNED_BLOCKS, supports_last_conv
from simtune.apps.images.run.losses import LOSSES
from simtune.models.encoders.efficientnet_lite import VARIANTS, tuned_block_keys

# What runs saved before these settings existed trained with.
BEFORE_THESE_SETTINGS = {"tuned_blocks": 0, "min_batches_per_epoch": 0, "flip_average": False}


@dataclass
class TrainSettings:
    """Everything that defines a training run; saved to ``train_settings.json`` and compared on resume."""

    backbones: list[str] = field(default_factory=lambda: ["lite0"])
    head: str = LAST_CONV
    tuned_blocks: int | None = None  # last-conv: also tune the backbone's last N blocks (None: LAST_CONV_TUNED_BLOCKS)
    loss: str = "multi-similarity"
    epochs: int = 10  # at most: training stops earlier when validation R-Precision stalls for `patience` epochs
    patience: int = 3
    learning_rate: float | None = None  # None: the head's default (HEADS)
    weight_decay: float = 1e-4
    classes_per_batch: int = 64
    samples_per_class: int = 8
    min_batches_per_epoch: int = 12
    mirror: bool = False
    # last-conv: the served (and evaluated) embedding averages each image's and its mirror's (None: on)
    flip_average: bool | None = None
    seed: int = 0
    workers: int = 2

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; expected one of {sorted(HEADS)}")
        if self.head == LAST_CONV and not supports_last_conv(self.backbones):
            raise ValueError(
                f"head {LAST_CONV!r} fine-tunes the last convolution of exactly one EfficientNet-Lite backbone "
                f"({', '.join(sorted(VARIANTS))}), not {self.backbones}; choose another head (e.g. skip)"
            )
        last_conv = self.head == LAST_CONV
        if self.tuned_blocks is None:
            self.tuned_blocks = LAST_CONV_TUNED_BLOCKS if last_conv else 0
        if self.flip_average is None:
            self.flip_average = last_conv
        if self.tuned_blocks and not last_conv:
            raise ValueError(
                f"tuned_blocks={self.tuned_blocks} tunes backbone blocks inside the {LAST_CONV!r} head, "
                f"not {self.head!r}"
            )
        if self.flip_average and not last_conv:
            raise ValueError(
                f"flip_average needs the {LAST_CONV!r} head (an EfficientNet-Lite that encodes mirrors), "
                f"not {self.head!r}"
            )
        if self.tuned_blocks:
            tuned_block_keys(self.backbones[0], self.tuned_blocks)  # says how many blocks the variant allows
        if self.learning_rate is None:
            self.learning_rate = HEADS[self.head][1]
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; expected one of {sorted(LOSSES)}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.min_batches_per_epoch < 0:
            raise ValueError(f"min_batches_per_epoch must be >= 0, got {self.min_batches_per_epoch}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")

    @property
    def views(self) -> tuple[str, ...]:
        """The views training reads: the images, and their mirror images with ``mirror``."""
        return (ORIGINAL, MIRROR) if self.mirror else (ORIGINAL,)


def load_settings(run: Run | str | Path) -> TrainSettings:
    """The settings the run was trained with (runs from before a setting existed get its old value)."""
    run = Run.of(run)
    if not run.settings_file.is_file():
        raise FileNotFoundError(
            f"{run.settings_file} not found: train the run first (`simtune images train --data PATH --run {run}`)"
        )
    try:
        return TrainSettings(**(BEFORE_THESE_SETTINGS | json.loads(run.settings_file.read_text(encoding="utf-8"))))
    except (TypeError, ValueError) as error:  # a key added or removed by hand, a damaged file, a bad value
        raise ValueError(
            f"{run.settings_file} is damaged or was edited by hand ({type(error).__name__}: {error}): "
            f"delete it to train {run} again with the command's settings, or use a new --run folder"
        ) from None
