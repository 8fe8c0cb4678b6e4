"""Does a float16 cache, or a bfloat16 encode, change what the images app measures? Validation R-Precision.

The images app stores its cached backbone outputs in float16 and encodes in bfloat16 autocast where the
CPU computes it natively (``precision="auto"``). This measures what that costs, on the validation
classes of a class split (carved from the training half, as training's own choices are; the unseen
classes are never read): the default backbone's outputs (EfficientNet-Lite0 block inputs) are encoded
in float32 and in bfloat16, each kept in float32 and stored in float16 (through ``store_encoded``, as the
cache stores them), and the base head (the pretrained last layers) is scored by leave-one-out
R-Precision on each. Also the smallest cosine between an image's bfloat16 and float32 embedding.

    .venv/bin/python benchmarks/cache_precision.py --data ../shared/datasets/stanford-cars-crop224 --seed 0

``--per-class N`` keeps N images of each validation class (a quick check). Prints a table and writes
benchmarks/results/cache_precision.json (atomically).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.nn import functional

from simtune.apps.images.data.dataset import VALIDATION, prepare_dataset
from simtune.apps.images.data.run_folder import Run
from simtune.apps.images.data.samples import ImageSamples
from simtune.apps.images.run.settings import TrainSettings
from simtune.apps.images.run.trainable import training_encoders
from simtune.apps.images.run.validation import head_outputs, retrieval_scores
from simtune.atomic import write_json
from simtune.encoding import cpu_has_native_bfloat16
from simtune.models.heads import EfficientNetLiteTopHead
from simtune.train import CacheConfig, encode_or_load, store_encoded

RESULTS = Path(__file__).parent / "results" / "cache_precision.json"


def validation_records(data: str, work: Path, seed: int, per_class: int | None) -> list:
    dataset, _ = prepare_dataset(data, Run(work / f"split-{seed}"), seed=seed, progress=False)
    records, kept = [], {}
    for record in dataset.subset(VALIDATION):
        kept[record.class_index] = kept.get(record.class_index, 0) + 1
        if per_class is None or kept[record.class_index] <= per_class:
            records.append(record)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/datasets/stanford-cars-crop224")
    parser.add_argument("--work", default="runs/cache_precision", help="Folder for the split and the caches.")
    parser.add_argument("--seed", type=int, default=0, help="Class-split seed.")
    parser.add_argument("--per-class", type=int, default=None, help="Validation images kept per class [all].")
    parser.add_argument("--workers", type=int, default=None, help="Decoding processes [automatic].")
    args = parser.parse_args()

    work = Path(args.work)
    records = validation_records(args.data, work, args.seed, args.per_class)
    samples = ImageSamples(records)
    groups = torch.tensor(samples.groups)
    settings = TrainSettings()
    encoders = training_encoders(settings)
    (name, encoder), *others = encoders.items()
    assert not others, "one backbone: the default settings"
    head = EfficientNetLiteTopHead(encoder.embedding_size, name, tuned_blocks=settings.tuned_blocks)

    outputs, seconds = {}, {}
    for precision in ("float32", "bfloat16"):
        config = CacheConfig(save_dir=work / "cache", dtype="float32", precision=precision, num_workers=args.workers)
        start = time.perf_counter()
        encoded = encode_or_load(encoders, samples, config, name=f"validation_{precision}", device="cpu")
        seconds[precision] = round(time.perf_counter() - start, 1)
        outputs[(precision, "float32")] = encoded.features().float()
        half = CacheConfig(save_dir=work / "cache", dtype="float16", precision=precision)
        stored = store_encoded(encoders, samples, outputs[(precision, "float32")], half, name=f"half_{precision}")
        outputs[(precision, "float16")] = stored.features().float()

    rows, embeddings = [], {}
    for (precision, dtype), features in outputs.items():
        embeddings[(precision, dtype)] = head_outputs(head, features)
        score = retrieval_scores(embeddings[(precision, dtype)], groups, "validation")["validation_r_precision"]
        rows.append({"encode": precision, "cache": dtype, "validation_r_precision": round(score, 5)})
    cosine = functional.cosine_similarity(embeddings[("bfloat16", "float32")], embeddings[("float32", "float32")])
    report = {
        "data": str(Path(args.data).resolve()),
        "split_seed": args.seed,
        "validation_images": len(records),
        "validation_classes": len(set(samples.groups)),
        "backbone": name,
        "cpu_native_bfloat16": cpu_has_native_bfloat16(),
        "rows": rows,
        "min_cosine_bfloat16_to_float32": round(float(cosine.min()), 5),
        "encode_seconds": seconds,
    }
    print(f"{len(records)} validation images of {report['validation_classes']} classes, split seed {args.seed}")
    print(f"{'encode':>9} {'cache':>8} {'R-Precision':>12}")
    for row in rows:
        print(f"{row['encode']:>9} {row['cache']:>8} {row['validation_r_precision']:>12.5f}")
    print(f"min cosine, bfloat16 vs float32 encode: {report['min_cosine_bfloat16_to_float32']:.5f}")
    print(f"encode seconds (first run; a rerun reads the cache): {seconds}")
    write_json(RESULTS, report, indent=1)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
