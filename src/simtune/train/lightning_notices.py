"""Lightning's advertising on every Trainer: tips to install its cloud logger and model registry, and the
notice that TensorBoard is no longer a dependency. They say nothing about the run, so simtune drops
exactly these three messages; every other Lightning message and warning is left as it is."""

from __future__ import annotations

import logging
import warnings

ADVERTISING = ("💡 Tip: For seamless cloud",)
RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class _DropAdvertising(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(ADVERTISING)


def quiet_lightning_notices() -> None:
    for name in RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, _DropAdvertising) for existing in logger.filters):
            logger.addFilter(_DropAdvertising())
    warnings.filterwarnings("ignore", r"Starting from v1\.9\.0, `tensorboardX` has been removed", UserWarning)
