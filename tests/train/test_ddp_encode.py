"""Encoding with two CPU processes (gloo) writes the cache one process writes, each rank encoding half."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ddp_encode import BATCH_SIZE
from test_distributed import _free_port
from train_fakes import GroupImages, PairImages, TinyConvEncoder

from simtune.train import CacheConfig, load_encoded
from simtune.train.distributed import shard

GROUP_ITEMS, PAIR_ITEMS = 100, 60


def test_shards_are_whole_batches_covering_every_item_once():
    for num_items, world in [(100, 2), (100, 3), (17, 2), (8, 2), (1, 1), (64, 8)]:
        parts = [shard(num_items, BATCH_SIZE, rank, world) for rank in range(world)]
        assert [i for part in parts for i in part] == list(range(num_items))
        assert all(part.start % BATCH_SIZE == 0 for part in parts)
        sizes = [len(part) for part in parts if len(part)]
        assert max(sizes) - min(sizes) <= BATCH_SIZE


def _encode(devices: int, tmp_path: Path) -> tuple[Path, list[dict]]:
    cache, out = tmp_path / f"cache{devices}", tmp_path / f"out{devices}"
    env = os.environ | {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "OMP_NUM_THREADS": "1"}
    script = Path(__file__).with_name("ddp_encode.py")
    result = subprocess.run(
        [sys.executable, str(script), str(devices), str(cache), str(out)], env=env, capture_output=True, timeout=600
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return cache, [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(devices)]


def _read(cache: Path, dataset, name: str):
    config = CacheConfig(cache_type="cpu", save_dir=cache, batch_size=BATCH_SIZE)
    found = load_encoded(TinyConvEncoder(), dataset, config, name=name, device="cpu")
    assert found is not None, f"no {name} cache in {cache}"
    return found


@pytest.mark.slow
def test_two_process_encode_equals_one_process_encode(tmp_path):
    single_dir, single = _encode(1, tmp_path)
    double_dir, double = _encode(2, tmp_path)
    objects = GROUP_ITEMS + 2 * PAIR_ITEMS  # a pair item is two objects
    assert single[0]["items_encoded"] == objects
    # Each rank encoded its own half (whole batches) and received the whole table.
    assert [r["world_size"] for r in double] == [2, 2]
    assert sum(r["items_encoded"] for r in double) == objects
    assert all(objects / 2 - BATCH_SIZE <= r["items_encoded"] <= objects / 2 + BATCH_SIZE for r in double)
    assert all(r["group_rows"] == GROUP_ITEMS and r["pair_rows"] == 2 * PAIR_ITEMS for r in double)
    for dataset, name in [
        (GroupImages(num_classes=10, per_class=10, seed=3), "groups"),
        (PairImages(num_classes=5, per_class=6), "pairs"),
    ]:
        one, two = _read(single_dir, dataset, name), _read(double_dir, dataset, name)
        # The same batches through the same kernels: equal to float32 rounding (measured: bit-identical).
        torch.testing.assert_close(two.embeddings, one.embeddings, rtol=0, atol=1e-6)
        assert two.targets.keys() == one.targets.keys()
        assert all(torch.equal(two.targets[key], one.targets[key]) for key in one.targets)
