"""``simtune images evaluate``: the frozen backbones alone (base) vs the tuned model, on the unseen classes.

Exact leave-one-out retrieval over every unseen image: each image queries all the others (its own
entry excluded). Base and tuned embeddings both come from the run's cached backbone outputs (the head
is applied to them), so evaluation never decodes an image it has already encoded. Base is always the
frozen backbones' pooled features: for a ``last-conv`` run, the pretrained final convolution is applied
to the cached feature maps. This is the first step that looks at the unseen classes; it also replays the
per-epoch head snapshots over them, so the report can show the unseen curve beside the validation curve
that training was steered by.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from simtune.apps.images.data.dataset import TRAIN, UNSEEN, VALIDATION, ImageDataset
from simtune.apps.images.data.run_folder import Run
from simtune.apps.images.data.samples import ImageSamples
from simtune.apps.images.run.epoch_history import SELECTION
from simtune.apps.images.run.features import BackboneFeatures, mirrors_images
from simtune.apps.images.run.figures import metrics_bar_chart, retrieval_grid, training_curves
from simtune.apps.images.run.report import write_report
from simtune.apps.images.run.settings import load_settings
from simtune.apps.images.run.snapshots import load_snapshot, saved_epochs
from simtune.apps.images.run.validation import head_outputs, retrieval_scores
from simtune.atomic import write_json
from simtune.eval import (
    Evaluator,
    GroupSampler,
    MeanAveragePrecisionAtR,
    MeanReciprocalRank,
    PrecisionAtK,
    RecallAtK,
    RetrievalRPrecision,
)
from simtune.functional.ranking import ranked_blocks
from simtune.models import SimilarityModel
from simtune.models.heads import EfficientNetLiteTopHead

HEADLINE = ("r_precision", "map_at_r", "precision_at_1", "recall_at_10", "mrr")
EVALUATOR_METRICS = (
    RetrievalRPrecision(),
    MeanAveragePrecisionAtR(),
    PrecisionAtK(1),
    RecallAtK(1),
    RecallAtK(5),
    RecallAtK(10),
    MeanReciprocalRank(),
)


def evaluation_record(run: Run, metrics: dict[str, Any]) -> dict[str, str]:
    """What ``metrics.json`` was computed from, and a digest of what it says: the model's config files (they
    record every weight file's sha256, checked whenever the model loads), the data set and the split."""
    inputs = hashlib.sha256()
    for path in [*sorted(run.model_dir.rglob("*.json")), run.dataset_file, run.split_file]:
        inputs.update(str(path.relative_to(run.root)).encode() + b"\0" + path.read_bytes() + b"\0")
    body = json.dumps(metrics, sort_keys=True, default=str).encode()
    return {"inputs_sha256": inputs.hexdigest(), "metrics_sha256": hashlib.sha256(body).hexdigest()}


def current_metrics(run: Run | str | Path) -> dict[str, Any] | None:
    """``metrics.json`` when it was computed from the run's present model, data set and split and is unedited
    (and the report is there): what a rerun can show instead of evaluating again; None otherwise."""
    run = Run.of(run)
    try:
        saved = json.loads(run.metrics_file.read_text(encoding="utf-8"))
        record = saved.pop("evaluated")
        if run.report_file.is_file() and record == evaluation_record(run, saved):
            return saved
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        pass
    return None


def head_embeddings(model: SimilarityModel, backbone_outputs: Tensor) -> Tensor:
    return head_outputs(model.head, backbone_outputs)


def base_embeddings(model: SimilarityModel, backbone_outputs: Tensor) -> Tensor:
    """What the frozen backbones alone give: their outputs, or for feature maps the pretrained final layers
    (on the images alone, never flip-averaged: the base row is the frozen network as it ships)."""
    head = model.head
    if not isinstance(head, EfficientNetLiteTopHead):
        return backbone_outputs.float()
    size = head.input_embedding_size // head.views
    pretrained = EfficientNetLiteTopHead(size, head.variant, tuned_blocks=head.tuned_blocks)
    return head_outputs(pretrained, backbone_outputs[:, :size])


def unseen_curves(model: SimilarityModel, snapshots: Path, backbone_outputs: Tensor, groups: Tensor) -> dict[str, list]:
    """``unseen_<metric>`` per epoch: each epoch's head snapshot scored on the unseen images."""
    head = copy.deepcopy(model.head)
    curves: dict[str, list] = {}
    for epoch in saved_epochs(snapshots):
        head.load_state_dict(load_snapshot(snapshots, epoch))
        for name, value in retrieval_scores(head_outputs(head, backbone_outputs), groups, "unseen").items():
            curves.setdefault(name, []).append((epoch, value))
    return curves


def nearest(embeddings: Tensor, queries: list[int], k: int) -> list[list[int]]:
    """Top-k gallery rows per query row (itself excluded), by the exact ranking the metrics use."""
    excluded = torch.tensor([[row, index] for row, index in enumerate(queries)])
    blocks = ranked_blocks(embeddings[queries], embeddings, k, excluded_pairs=excluded)
    return [row.tolist() for block in blocks for row in block.top_indices]


def pick_queries(groups: list[int], count: int, seed: int) -> list[int]:
    """``count`` seeded queries from distinct classes that have something to find."""
    rng = np.random.default_rng(seed)
    sizes = np.bincount(groups)
    seen: set[int] = set()
    picked = []
    for row in rng.permutation(len(groups)):
        if sizes[groups[row]] > 1 and groups[row] not in seen:
            seen.add(groups[row])
            picked.append(int(row))
        if len(picked) == count:
            break
    return picked


def evaluate_run(
    run: Run | str | Path,
    grid_queries: int = 6,
    neighbours: int = 8,
    features: BackboneFeatures | None = None,
    unseen_curve: bool = False,
    device: str | torch.device = "auto",
) -> dict[str, Any]:
    """Writes ``metrics.json``, the figures and ``report.html`` into the run folder; returns the metrics.

    ``features``: backbone outputs already loaded for the run's images (as ``train_run`` takes them).
    ``unseen_curve``: also score every epoch's head snapshot on the unseen images, for the report only
    (one head pass over them per epoch: minutes on a CPU for thousands of images, so off by default;
    the report then shows the kept model's unseen scores beside the validation curve). ``device``: where images
    the cache lacks are encoded (``auto|cpu|cuda|cuda:N``); the metrics are computed in float32 whichever."""
    run = Run.of(run)
    dataset = ImageDataset.load(run.dataset_file)
    split = run.split()
    settings = load_settings(run)
    model = run.model()
    unseen_records = dataset.subset(UNSEEN)
    samples = ImageSamples(unseen_records)
    if features is None:
        features = BackboneFeatures.of_run(model.encoders, dataset.records, run.cache_dir, settings, device).prepare()
    backbone_outputs = features.backbone_outputs(unseen_records, mirrored=mirrors_images(model.encoders))
    if backbone_outputs.shape[1] != model.head.input_embedding_size:
        raise ValueError(
            f"the features given are {backbone_outputs.shape[1]} wide, but the model in {run.model_dir} reads "
            f"{model.head.input_embedding_size}: they come from other backbones"
        )
    base, tuned = base_embeddings(model, backbone_outputs), head_embeddings(model, backbone_outputs)
    history_path = run.history_file
    history = json.loads(history_path.read_text()) if history_path.is_file() else {}
    if history and unseen_curve:
        groups = torch.tensor([r.class_index for r in unseen_records])
        history |= unseen_curves(model, run.snapshots_dir, backbone_outputs, groups)
        write_json(history_path, history)
    del backbone_outputs
    evaluator = Evaluator(list(EVALUATOR_METRICS))
    task = GroupSampler().sample(samples)
    results = {"base": evaluator.score(task, base), "tuned": evaluator.score(task, tuned)}
    metrics: dict[str, Any] = {name: result.metrics for name, result in results.items()}
    metrics["queries"] = {
        "num_queries": results["tuned"].num_queries,
        "num_queries_without_relevant": results["tuned"].num_queries_without_relevant,
        "protocol": "exact leave-one-out over all unseen images, cosine similarity",
    }
    metrics["data"] = {
        "train_classes": len(split.train_classes),
        "validation_classes": len(split.validation_classes),
        "unseen_classes": len(split.unseen_classes),
        "train_images": len(dataset.subset(TRAIN)),
        "validation_images": len(dataset.subset(VALIDATION)),
        "unseen_images": len(unseen_records),
        "single_image_classes": dataset.single_image_classes(UNSEEN),
        "skipped": [f"{path}: {reason}" for path, reason in dataset.skipped.items()],
        "missing": dataset.missing,
        "duplicates": [f"{copy} = {kept}" for copy, kept in dataset.duplicates.items()],
        "label_conflicts": [f"{path} is {conflict}" for path, conflict in dataset.label_conflicts.items()],
        "unread_folders": dataset.unread_folders,
        "split_seed": split.seed,
    }
    metrics["training"] = {**vars(settings), "embedding_size": model.embedding_size}
    if SELECTION in history:
        metrics["selection"] = history[SELECTION]
    write_json(run.metrics_file, metrics | {"evaluated": evaluation_record(run, metrics)})

    figures_dir = run.figures_dir
    figures = {
        "Base vs tuned": metrics_bar_chart(metrics["base"], metrics["tuned"], HEADLINE, figures_dir / "metrics.png")
    }
    if history:
        kept = history.get(SELECTION, {}).get("kept_epoch")
        figures[
            "Training curves: validation classes (steered early stopping and the kept epoch) beside the unseen "
            "classes (scored afterwards, never used to choose)"
        ] = training_curves(
            history,
            figures_dir / "training_curves.png",
            kept_epoch=kept,
            final={f"unseen_{name}": value for name, value in metrics["tuned"].items()},
        )
    groups = [r.class_index for r in unseen_records]
    queries = pick_queries(groups, grid_queries, seed=split.seed)
    for name, embeddings in (("base", base), ("tuned", tuned)):
        found = nearest(embeddings, queries, neighbours)
        figures[f"Retrieval, {name}: query + top-{neighbours} (green = same class, red = other)"] = retrieval_grid(
            [unseen_records[q] for q in queries],
            [[unseen_records[i] for i in row] for row in found],
            f"{name}: nearest unseen images",
            figures_dir / f"retrieval_{name}.png",
        )
    write_report(
        run.report_file,
        metrics,
        figures,
        {
            "data": metrics["data"],
            "training": metrics["training"],
            "title": dataset.title,
            "noun": dataset.noun,
            "selection": metrics.get("selection"),
        },
    )
    return metrics
