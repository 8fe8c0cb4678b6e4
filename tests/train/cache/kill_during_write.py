"""Run as a script: write a cache, and die by SIGKILL at a chosen moment of writing it. Used by test_storage.py.

``argv[1]``: the save folder. ``argv[2]``, the moment: ``mid_encode`` (a fill, after ``DIE_AFTER`` items
were encoded: some chunks recorded, one half written), or, replacing a whole entry, ``before_swap`` (the
entry is written, the folder not yet in place), ``after_swap`` (the new folder is in place, the one it
replaced not yet deleted) or ``between_renames`` (where the system cannot swap two folders in one step:
the old one moved aside, the new one not yet in place). ``argv[3]``: ``fill`` (``encode_or_load``) or
``replace`` (``save_cache`` of ``REPLACEMENT`` over whatever cache of its fingerprint is there).
"""

import os
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train_fakes import GroupImages, TinyConvEncoder  # noqa: E402

import simtune.atomic as atomic  # noqa: E402
import simtune.train.cache.storage as storage  # noqa: E402
from simtune.train.cache import CacheConfig, encode_or_load  # noqa: E402

FINGERPRINT = {"dataset keys": "a", "encoder 'default' weights": "w"}
REPLACEMENT = storage.CachedEmbeddings(
    "group", {"default": torch.full((1, 4, 3), 2.0)}, {"groups": torch.tensor([0, 0, 1, 1])}, FINGERPRINT
)
DIE_AFTER = 50
FILL_CONFIG = {"batch_size": 8, "chunk_items": 16, "num_workers": 0, "dtype": "float16"}


def fill_dataset() -> GroupImages:
    return GroupImages(num_classes=10, per_class=10)


def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def die_after_enough(forward):
    """``TinyConvEncoder.forward`` that dies once ``DIE_AFTER`` items were encoded (the same class, so
    the same cache fingerprint)."""

    def dying(self, batch):
        if self.items_encoded >= DIE_AFTER:
            die()
        return forward(self, batch)

    return dying


def main(save_dir: Path, moment: str, what: str) -> None:
    if moment == "before_swap":
        storage.CacheEntry.close = die
    elif moment == "after_swap":
        atomic.shutil.rmtree = die
    elif moment == "between_renames":
        atomic._exchange = lambda first, second: False
        real_rename, renames = os.rename, []

        def rename_then_die(source, destination):
            renames.append(source)
            if len(renames) == 2:
                die()
            real_rename(source, destination)

        atomic.os.rename = rename_then_die
    if what == "fill":
        config = CacheConfig(save_dir=save_dir, **FILL_CONFIG)
        TinyConvEncoder.forward = die_after_enough(TinyConvEncoder.forward)
        encode_or_load(TinyConvEncoder(), fill_dataset(), config, name="train", device="cpu", progress=False)
    else:
        storage.save_cache(save_dir, "train", REPLACEMENT)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3])
