import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from kill_during_write import DIE_AFTER, FILL_CONFIG, FINGERPRINT, fill_dataset
from train_fakes import GroupImages, TinyConvEncoder

from simtune.atomic import clean_leftovers
from simtune.train.cache import CacheConfig, encode_or_load, load_encoded
from simtune.train.cache.storage import CachedEmbeddings, load_cache, save_cache


def _cache(fingerprint=None, items: int = 4) -> CachedEmbeddings:
    return CachedEmbeddings(
        kind="group",
        embeddings={"default": torch.randn(1, items, 3)},
        targets={"groups": torch.arange(items) // 2},
        fingerprint=fingerprint or {"dataset keys": "a", "encoder 'default' weights": "w"},
    )


def test_round_trip_is_chunked_checksummed_and_memory_mapped(tmp_path):
    cache = _cache(items=1100)  # three chunks of 512 items
    folder = save_cache(tmp_path, "train", cache)
    assert sorted(p.name for p in folder.iterdir()) == ["chunks", "embedding.default.npy", "layout.json"]
    assert sorted(p.name for p in (folder / "chunks").iterdir()) == [
        "0.0-512.json",
        "0.1024-1100.json",
        "0.512-1024.json",
    ]
    assert json.loads((folder / "layout.json").read_text())["fingerprint"] == cache.fingerprint
    loaded = load_cache(tmp_path, "train", cache.fingerprint, num_items=1100)
    assert torch.equal(loaded.embeddings["default"], cache.embeddings["default"])
    assert torch.equal(loaded.targets["groups"], cache.targets["groups"])
    maps = Path("/proc/self/maps").read_text()
    assert str(folder / "embedding.default.npy") in maps  # read through a mapping, not into memory


def test_wrong_length_or_broken_files_are_not_trusted(tmp_path, caplog):
    cache = _cache()
    folder = save_cache(tmp_path, "train", cache)
    with caplog.at_level(logging.WARNING, logger="simtune"):
        assert load_cache(tmp_path, "train", cache.fingerprint, num_items=5) is None
        (folder / "embedding.default.npy").write_bytes(b"not an array")
        assert load_cache(tmp_path, "train", cache.fingerprint, num_items=4) is None
    assert [r.getMessage().count("4 items, the dataset has 5") for r in caplog.records][0] == 1
    assert "damaged" in caplog.records[1].getMessage()


def test_a_new_fingerprint_replaces_the_stale_cache(tmp_path):
    save_cache(tmp_path, "train", _cache())
    newer = _cache({"dataset keys": "b", "encoder 'default' weights": "w"})
    save_cache(tmp_path, "train", newer)
    assert len(list(tmp_path.glob("train-*"))) == 1
    assert load_cache(tmp_path, "train", newer.fingerprint, num_items=4) is not None


def _zero_rows(folder: Path, first_byte: int, count: int) -> None:
    """Zeroes ``count`` bytes of the embeddings from ``first_byte`` on (after the .npy header)."""
    path = folder / "embedding.default.npy"
    offset = np.load(path, mmap_mode="r").offset
    with open(path, "r+b") as file:
        file.seek(offset + first_byte)
        file.write(bytes(count))


def test_damaged_rows_are_refused_by_readers_and_re_encoded_by_fillers(tmp_path, caplog):
    """Zeroed bytes inside the embeddings (a damaged disk) never reach a reader: load_encoded refuses the
    entry; encode_or_load encodes the damaged chunk again, and only it."""
    data, config = GroupImages(num_classes=10, per_class=10), CacheConfig(save_dir=tmp_path, chunk_items=16)
    first = encode_or_load(TinyConvEncoder(), data, config, device="cpu", progress=False)
    expected = first.embeddings["default"].clone()
    folder = next(tmp_path.glob("features-*"))
    _zero_rows(folder, first_byte=20 * 8 * 4, count=40)  # inside item 20: the chunk of items 16-32
    with caplog.at_level(logging.WARNING, logger="simtune"):
        assert load_encoded(TinyConvEncoder(), data, config) is None
        encoder = TinyConvEncoder()
        again = encode_or_load(encoder, data, config, device="cpu", progress=False)
    messages = [r.getMessage() for r in caplog.records]
    assert "1 chunk(s) fail their checksum (items 16-32 of view 0); refusing it" in messages[0]
    assert "encoding them again" in messages[1]
    assert encoder.items_encoded == 16
    assert torch.equal(again.embeddings["default"], expected)


def test_a_cache_of_another_dtype_is_named_and_rebuilt(tmp_path, caplog):
    data = GroupImages()
    encode_or_load(
        TinyConvEncoder(), data, CacheConfig(save_dir=tmp_path, dtype="float32"), device="cpu", progress=False
    )
    with caplog.at_level(logging.WARNING, logger="simtune"):
        half = encode_or_load(
            TinyConvEncoder(), data, CacheConfig(save_dir=tmp_path, dtype="float16"), device="cpu", progress=False
        )
    assert [r.getMessage() for r in caplog.records] == [
        f"simtune cache: features cache in {tmp_path} is stale (stored as float32, float16 asked); rebuilding"
    ]
    assert half.embeddings["default"].dtype == torch.float16
    assert len(list(tmp_path.glob("features-*"))) == 1


def test_a_cache_encoded_in_another_precision_is_named_and_rebuilt(tmp_path, caplog):
    data = GroupImages()
    single = encode_or_load(TinyConvEncoder(), data, CacheConfig(save_dir=tmp_path), device="cpu", progress=False)
    bfloat = CacheConfig(save_dir=tmp_path, precision="bfloat16")
    with caplog.at_level(logging.WARNING, logger="simtune"):
        half = encode_or_load(TinyConvEncoder(), data, bfloat, device="cpu", progress=False)
    assert [r.getMessage() for r in caplog.records] == [
        f"simtune cache: features cache in {tmp_path} is stale (precision changed); rebuilding"
    ]
    assert not torch.equal(half.features(), single.features())  # encoded again, in bfloat16
    torch.testing.assert_close(half.features(), single.features(), rtol=0.05, atol=0.05)
    (entry,) = tmp_path.glob("features-*")
    assert {json.loads(chunk.read_text())["precision"] for chunk in (entry / "chunks").iterdir()} == {"bfloat16"}
    assert load_encoded(TinyConvEncoder(), data, bfloat, device="cpu") is not None
    assert load_encoded(TinyConvEncoder(), data, CacheConfig(save_dir=tmp_path), device="cpu") is None


def test_a_cache_in_the_older_format_is_named_and_rebuilt(tmp_path, caplog):
    old = tmp_path / "features-0123456789abcdef"
    old.mkdir()
    (old / "embeddings.safetensors").write_bytes(b"whatever it held")
    (old / "meta.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="simtune"):
        encode_or_load(TinyConvEncoder(), GroupImages(), tmp_path, device="cpu", progress=False)
    assert [r.getMessage() for r in caplog.records] == [
        f"simtune cache: features cache in {tmp_path} is in an older format (one unchecked file); rebuilding"
    ]
    assert not old.exists()


def _kill_during_write(save_dir: Path, moment: str, what: str) -> None:
    script = Path(__file__).with_name("kill_during_write.py")
    command = [sys.executable, str(script), str(save_dir), moment, what]
    result = subprocess.run(command, capture_output=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]


def test_kill_9_mid_encode_resumes_and_equals_an_uninterrupted_cache(tmp_path, caplog):
    _kill_during_write(tmp_path / "killed", "mid_encode", "fill")
    (folder,) = (tmp_path / "killed").glob("train-*")
    recorded = sorted(p.name for p in (folder / "chunks").iterdir())
    assert recorded == ["0.0-16.json", "0.16-32.json", "0.32-48.json"]  # the chunk of item DIE_AFTER is unrecorded

    config = CacheConfig(save_dir=tmp_path / "killed", **FILL_CONFIG)
    assert load_encoded(TinyConvEncoder(), fill_dataset(), config) is None  # an unfinished entry is never read
    encoder = TinyConvEncoder()
    with caplog.at_level(logging.WARNING, logger="simtune"):
        resumed = encode_or_load(encoder, fill_dataset(), config, name="train", device="cpu", progress=False)
    assert encoder.items_encoded == len(fill_dataset()) - 48 > len(fill_dataset()) - DIE_AFTER
    assert [r.getMessage() for r in caplog.records] == [
        f"simtune cache: resuming the train cache in {folder}: 48 of 100 items already encoded"
    ]
    whole = CacheConfig(save_dir=tmp_path / "whole", **FILL_CONFIG)
    uninterrupted = encode_or_load(TinyConvEncoder(), fill_dataset(), whole, name="train", device="cpu", progress=False)
    assert torch.equal(resumed.embeddings["default"], uninterrupted.embeddings["default"])
    assert torch.equal(resumed.targets["groups"], uninterrupted.targets["groups"])
    reread = load_encoded(TinyConvEncoder(), fill_dataset(), config, name="train")
    assert torch.equal(reread.embeddings["default"], uninterrupted.embeddings["default"])


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
