"""Run as a script: ``python ddp_encode.py DEVICES CACHE_DIR OUT_DIR``. Encodes the tiny group and pair
data sets into ``CACHE_DIR`` with ``DEVICES`` CPU processes (Lightning Fabric, ``strategy="ddp"``, gloo);
Lightning re-runs this script for the other ranks. Each rank writes ``OUT_DIR/rank<R>.json``: how many
items its encoder ran on, and whether the table it received is the whole one.
"""

import json
import sys
from pathlib import Path

import torch
from lightning.fabric import Fabric

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_fakes import GroupImages, PairImages, TinyConvEncoder  # noqa: E402

from simtune.train import CacheConfig, encode_or_load  # noqa: E402

BATCH_SIZE = 8


def main(devices: int, cache_dir: Path, out_dir: Path) -> None:
    torch.set_num_threads(1)
    fabric = Fabric(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto")
    fabric.launch()
    config = CacheConfig(cache_type="cpu", save_dir=cache_dir, batch_size=BATCH_SIZE, num_workers=0)
    encoder = TinyConvEncoder()
    groups = encode_or_load(encoder, GroupImages(10, 10, seed=3), config, name="groups", device="cpu")
    pairs = encode_or_load(encoder, PairImages(num_classes=5, per_class=6), config, name="pairs", device="cpu")
    report = {
        "world_size": fabric.world_size,
        "items_encoded": encoder.items_encoded,
        "group_rows": groups.embeddings["default"].shape[1],
        "pair_rows": pairs.embeddings["default"].shape[1],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"rank{fabric.global_rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
