"""Run as a script: fill a cache, then die by SIGKILL after the tensors are written but before the
folder is renamed into place (the worst moment). Used by test_storage.py."""

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import simtune.train.cache.storage as storage  # noqa: E402
from simtune.train.cache import CacheConfig, EncoderCache  # noqa: E402
from train_fakes import GroupImages, TinyConvEncoder  # noqa: E402

real_save_file = storage.save_file


def save_then_die(tensors, path):
    real_save_file(tensors, path)
    os.kill(os.getpid(), signal.SIGKILL)


storage.save_file = save_then_die
cache = EncoderCache(CacheConfig(save_dir=sys.argv[1]), {"default": TinyConvEncoder()}, {"train": GroupImages()})
cache.prepare(device=__import__("torch").device("cpu"))
