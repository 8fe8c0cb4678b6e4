"""Tuning the language model itself vs Quaterion's frozen-encoder recipe, on real question/answer pairs.

Data: the cloud-FAQ pairs of Quaterion's second tutorial (``train.jsonl``: ``question``, ``answer``, the
``source`` cloud and the ``filename`` of the FAQ page it came from). Near-duplicate questions live on the
same page, so the pairs are split BY PAGE: whole pages go to the held-out set (the final number, looked
at once), whole pages to validation (early stopping, keeping the best epoch), the rest to training.
Pairs without a page name (one cloud's) always train.

Models, each scored on the held-out pairs with ``PairSampler`` (every question and answer queries all
the others; its partner is the one relevant answer), reciprocal rank and precision@1:

- ``base``: all-MiniLM-L6-v2 as it is;
- ``frozen_head``: the tutorial's recipe: MiniLM frozen and cached, ``SkipConnectionHead(384)``,
  ``MultipleNegativesRankingLoss(symmetric=True, scale=10)`` (Quaterion's ``scale=20``: its cosine is
  ``(cos + 1) / 2``), Adam 1e-4, batches of 1024, all training pairs;
- ``tuned``: MiniLM itself fine-tuned (``TransformersTextEncoder(trainable=True)``, optionally only its
  last ``--trainable-layers``), ``EmptyHead``, MNRL with in-batch negatives (``scale=20``, symmetric),
  AdamW ``--lr``, batches of ``--batch-size``, on ``--train-pairs`` training pairs (a seeded subset: a
  CPU budget), at most ``--epochs`` epochs.

Both trained models stop early on validation reciprocal rank and keep their best epoch. The JSON is
rewritten after every model (``--only`` runs one and keeps the others' entries).

    python benchmarks/text_tuning.py --data ../shared/datasets/cloud-faq/train.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

import simtune
from simtune.atomic import write_json
from simtune.data import PairsSimilarityDataLoader, SimilarityPairSample, read_text_pairs
from simtune.eval import AttachedMetric, Evaluator, MeanReciprocalRank, PairSampler, PrecisionAtK
from simtune.losses import MultipleNegativesRankingLoss
from simtune.models import SimilarityModel
from simtune.models.encoders import MINILM_L6_V2, TransformersTextEncoder
from simtune.models.heads import EmptyHead, SkipConnectionHead
from simtune.train import CacheConfig, RestoreBestWeights, TrainableModel

RESULTS = Path(__file__).parent / "results"
MONITOR = "validation_mrr"


def split_by_page(
    pairs: list[tuple[int, dict[str, Any], SimilarityPairSample]], held_out: float, validation: float
) -> dict[str, list[SimilarityPairSample]]:
    """Whole FAQ pages (``source``/``filename``) in a fixed hash order fill held-out, then validation."""
    pages: dict[str, list[SimilarityPairSample]] = {}
    unnamed = []
    for _, record, pair in pairs:
        if record.get("filename"):
            pages.setdefault(f"{record.get('source')}/{record['filename']}", []).append(pair)
        else:
            unnamed.append(pair)
    order = sorted(pages, key=lambda page: hashlib.sha256(page.encode()).hexdigest())
    splits: dict[str, list[SimilarityPairSample]] = {"held_out": [], "validation": [], "train": list(unnamed)}
    targets = {"held_out": held_out * len(pairs), "validation": validation * len(pairs)}
    for page in order:
        split = next((name for name, size in targets.items() if len(splits[name]) < size), "train")
        splits[split] += pages[page]
    return splits


class FrozenHeadModel(TrainableModel):
    """Quaterion's tutorial: frozen MiniLM (cached), SkipConnectionHead, symmetric MNRL."""

    def __init__(self, max_length: int):
        self.max_length = max_length
        super().__init__()

    def configure_encoders(self):
        return TransformersTextEncoder(MINILM_L6_V2, max_length=self.max_length)

    def configure_head(self, input_embedding_size):
        return SkipConnectionHead(input_embedding_size)

    def configure_loss(self):
        return MultipleNegativesRankingLoss(symmetric=True, scale=10.0)  # Quaterion's scale=20

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=1e-4)

    def configure_caches(self):
        return CacheConfig(batch_size=128)

    def configure_metrics(self):
        return AttachedMetric([MeanReciprocalRank(), PrecisionAtK(1)], prog_bar=True)


class TunedModel(TrainableModel):
    """MiniLM fine-tuned with in-batch negatives, as sentence-transformers trains it."""

    def __init__(self, max_length: int, lr: float, trainable_layers: int | None):
        self.max_length, self.lr, self.trainable_layers = max_length, lr, trainable_layers
        super().__init__()

    def configure_encoders(self):
        return TransformersTextEncoder(
            MINILM_L6_V2, trainable=True, max_length=self.max_length, trainable_layers=self.trainable_layers
        )

    def configure_head(self, input_embedding_size):
        return EmptyHead(input_embedding_size)

    def configure_loss(self):
        return MultipleNegativesRankingLoss(symmetric=True, scale=20.0)

    def configure_optimizers(self):
        return torch.optim.AdamW([p for p in self.trainable_parameters() if p.requires_grad], lr=self.lr)

    def configure_metrics(self):
        return AttachedMetric([MeanReciprocalRank(), PrecisionAtK(1)], prog_bar=True)


def trainer(max_epochs: int, patience: int, folder: str) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=max_epochs,
        callbacks=[
            ModelCheckpoint(dirpath=folder, monitor=MONITOR, mode="max"),
            EarlyStopping(monitor=MONITOR, mode="max", patience=patience),
            RestoreBestWeights(),
        ],
        logger=False,
        enable_progress_bar=True,
        log_every_n_steps=1,
    )


def score(model: SimilarityModel, pairs: list[SimilarityPairSample]) -> dict[str, float]:
    evaluator = Evaluator({"mrr": MeanReciprocalRank(), "precision_at_1": PrecisionAtK(1)}, PairSampler())
    return {key: float(value) for key, value in simtune.evaluate(evaluator, pairs, model).items()}


def train(kind: str, args: argparse.Namespace, splits: dict[str, list[SimilarityPairSample]]) -> dict[str, Any]:
    pl.seed_everything(args.seed)
    with tempfile.TemporaryDirectory() as folder:
        if kind == "frozen_head":
            model, train_pairs, batch_size = FrozenHeadModel(args.max_length), splits["train"], 1024
            max_epochs, patience = args.frozen_epochs, 10
        else:
            model = TunedModel(args.max_length, args.lr, args.trainable_layers)
            train_pairs = random.Random(args.seed).sample(splits["train"], min(args.train_pairs, len(splits["train"])))
            batch_size, max_epochs, patience = args.batch_size, args.epochs, 1
        run = trainer(max_epochs, patience, folder)
        started = time.perf_counter()
        simtune.fit(
            model,
            run,
            PairsSimilarityDataLoader(train_pairs, batch_size=batch_size, shuffle=True),
            PairsSimilarityDataLoader(splits["validation"], batch_size=256),
        )
        seconds = time.perf_counter() - started
        checkpoint = run.checkpoint_callback
        best_epoch = int(torch.load(checkpoint.best_model_path, weights_only=True)["epoch"])
        return {
            "train_pairs": len(train_pairs),
            "batch_size": batch_size,
            "epochs_run": run.current_epoch,
            "best_epoch": best_epoch + 1,
            "best_validation_mrr": float(checkpoint.best_model_score),
            "train_seconds": round(seconds, 1),
            "held_out": score(model.model, splits["held_out"]),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the cloud-FAQ train.jsonl")
    parser.add_argument("--held-out", type=float, default=0.15, help="share of pairs (whole pages) held out")
    parser.add_argument("--validation", type=float, default=0.08, help="share of pairs (whole pages) validating")
    parser.add_argument("--max-length", type=int, default=64, help="tokens per text")
    parser.add_argument("--train-pairs", type=int, default=2000, help="training pairs the tuned model sees")
    parser.add_argument("--batch-size", type=int, default=32, help="tuned model's batch (in-batch negatives)")
    parser.add_argument("--epochs", type=int, default=3, help="tuned model's epoch limit")
    parser.add_argument("--lr", type=float, default=2e-5, help="tuned model's AdamW learning rate")
    parser.add_argument("--trainable-layers", type=int, default=None, help="tune only the last N layers")
    parser.add_argument("--frozen-epochs", type=int, default=300, help="frozen-head recipe's epoch limit")
    parser.add_argument("--only", choices=["base", "frozen_head", "tuned"], action="append")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", type=Path, default=RESULTS / "text_tuning.json")
    args = parser.parse_args()

    splits = split_by_page(read_text_pairs(args.data), args.held_out, args.validation)
    print({name: len(pairs) for name, pairs in splits.items()}, "pairs", flush=True)
    report: dict[str, Any] = json.loads(args.output.read_text()) if args.only and args.output.exists() else {}
    report |= {
        "data": str(args.data),
        "split": {name: len(pairs) for name, pairs in splits.items()},
        "conditions": {
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "torch_threads": torch.get_num_threads(),
            "max_length": args.max_length,
            "seed": args.seed,
        },
        "models": report.get("models", {}),
    }
    for kind in args.only or ["base", "frozen_head", "tuned"]:
        started = time.perf_counter()
        if kind == "base":
            minilm = TransformersTextEncoder(MINILM_L6_V2, max_length=args.max_length)
            entry: dict[str, Any] = {"held_out": score(SimilarityModel(minilm, EmptyHead(384)), splits["held_out"])}
        else:
            entry = train(kind, args, splits)
        entry["total_seconds"] = round(time.perf_counter() - started, 1)
        if kind == "tuned":
            entry |= {"lr": args.lr, "trainable_layers": args.trainable_layers, "epoch_limit": args.epochs}
        report["models"][kind] = entry
        print(kind, json.dumps(entry), flush=True)
        write_json(args.output, report)


if __name__ == "__main__":
    main()
