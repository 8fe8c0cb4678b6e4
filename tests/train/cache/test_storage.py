import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from kill_during_write import FINGERPRINT
from train_fakes import GroupImages, TinyConvEncoder

from simtune.atomic import clean_leftovers
from simtune.train.cache import CacheConfig, EncoderCache
from simtune.train.cache.storage import CachedEmbeddings, load_cache, save_cache

CPU = torch.device("cpu")


def _cache(fingerprint=None) -> CachedEmbeddings:
    return CachedEmbeddings(
        kind="group",
        embeddings={"default": torch.randn(1, 4, 3)},
        targets={"groups": torch.tensor([0, 0, 1, 1])},
        fingerprint=fingerprint or {"dataset keys": "a", "encoder 'default' weights": "w"},
    )


def test_round_trip_is_safetensors_and_json(tmp_path):
    cache = _cache()
    folder = save_cache(tmp_path, "train", cache)
    assert sorted(p.name for p in folder.iterdir()) == ["embeddings.safetensors", "meta.json"]
    assert json.loads((folder / "meta.json").read_text())["fingerprint"] == cache.fingerprint
    loaded = load_cache(tmp_path, "train", cache.fingerprint, num_items=4)
    assert torch.equal(loaded.embeddings["default"], cache.embeddings["default"])
    assert torch.equal(loaded.targets["groups"], cache.targets["groups"])


def test_wrong_length_or_broken_files_are_not_trusted(tmp_path, caplog):
    cache = _cache()
    folder = save_cache(tmp_path, "train", cache)
    with caplog.at_level(logging.WARNING, logger="simtune"):
        assert load_cache(tmp_path, "train", cache.fingerprint, num_items=5) is None
        (folder / "embeddings.safetensors").write_bytes(b"not a safetensors file")
        assert load_cache(tmp_path, "train", cache.fingerprint, num_items=4) is None
    assert [r.getMessage().count("unusable") for r in caplog.records] == [1, 1]


def test_a_new_fingerprint_replaces_the_stale_cache(tmp_path):
    save_cache(tmp_path, "train", _cache())
    newer = _cache({"dataset keys": "b", "encoder 'default' weights": "w"})
    save_cache(tmp_path, "train", newer)
    assert len(list(tmp_path.glob("train-*"))) == 1
    assert load_cache(tmp_path, "train", newer.fingerprint, num_items=4) is not None


def _kill_during_write(save_dir: Path, moment: str, what: str) -> None:
    script = Path(__file__).with_name("kill_during_write.py")
    command = [sys.executable, str(script), str(save_dir), moment, what]
    result = subprocess.run(command, capture_output=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]


@pytest.mark.slow
def test_kill_9_during_write_leaves_nothing_trusted(tmp_path, caplog):
    _kill_during_write(tmp_path, "before_swap", "fill")
    assert list(tmp_path.glob("train-*")) == [] and len(list(tmp_path.glob(".train-*.staging-*"))) == 1

    encoder = TinyConvEncoder()
    cache = EncoderCache(CacheConfig(save_dir=tmp_path), {"default": encoder}, {"train": GroupImages()})
    with caplog.at_level(logging.WARNING, logger="simtune"):
        cache.prepare(CPU)
    assert encoder.items_encoded == len(GroupImages())  # rebuilt, not read from the half-written folder
    assert not caplog.records
    assert [p.name.startswith("train-") for p in tmp_path.iterdir()] == [True]  # the leftover is gone


@pytest.mark.parametrize(("moment", "survivor"), [("before_swap", 1.0), ("after_swap", 2.0), ("between_renames", 1.0)])
def test_kill_9_while_replacing_a_cache_keeps_a_whole_one(tmp_path, moment, survivor):
    """Whenever a writer replacing a cache dies, a whole cache is there (the old or the new one; never none),
    and the next write removes what it left."""
    old = CachedEmbeddings(
        "group", {"default": torch.ones(1, 4, 3)}, {"groups": torch.tensor([0, 0, 1, 1])}, FINGERPRINT
    )
    folder = save_cache(tmp_path, "train", old)
    _kill_during_write(tmp_path, moment, "replace")
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(f".{folder.name}.")]) >= 1
    if moment == "between_renames":  # without an atomic swap: the clean-up starting any write puts it back
        assert not folder.exists()
        clean_leftovers(tmp_path)
    loaded = load_cache(tmp_path, "train", FINGERPRINT, num_items=4)
    assert loaded is not None and torch.equal(loaded.embeddings["default"], torch.full((1, 4, 3), survivor))
    save_cache(tmp_path, "train", old)
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]
