"""The report's figures as PNG files: base vs tuned bars, training curves, retrieval grids."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from simtune.apps.images.data.dataset import ImageRecord  # noqa: E402
from simtune.atomic import write_bytes  # noqa: E402
from simtune.image_modes import to_rgb  # noqa: E402

CORRECT, WRONG = "#1a9850", "#d73027"


def _save(figure: plt.Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    write_bytes(path, buffer.getvalue())
    return path


def metrics_bar_chart(base: dict[str, float], tuned: dict[str, float], names: Sequence[str], path: Path) -> Path:
    """Grouped bars, one pair (base, tuned) per metric, values printed on the bars."""
    figure, axes = plt.subplots(figsize=(1.6 * len(names) + 2, 4))
    x = np.arange(len(names))
    for offset, (label, values, colour) in zip((-0.2, 0.2), (("base", base, "#9e9e9e"), ("tuned", tuned, "#2166ac"))):
        bars = axes.bar(x + offset, [values[n] for n in names], width=0.4, label=label, color=colour)
        axes.bar_label(bars, fmt="%.3f", fontsize=8)
    axes.set_xticks(x, names)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("score on unseen classes")
    axes.legend()
    axes.set_title("Frozen encoder (base) vs tuned model, unseen classes")
    return _save(figure, path)


def training_curves(
    history: dict[str, Any], path: Path, kept_epoch: int | None = None, final: dict[str, float] | None = None
) -> Path:
    """Train loss, then one panel per retrieval metric with its validation and unseen curves side by side
    (``name -> [(epoch, value)]``, names ``validation_<metric>`` / ``unseen_<metric>``); the kept epoch is marked.
    ``final``: the kept model's scores (``unseen_<metric>``), drawn as one point where there is no unseen curve."""
    final = final or {}
    series = {name: points for name, points in history.items() if isinstance(points, list) and points}
    if not series:
        raise ValueError("no training history to plot: the run's history is empty")
    found = {name.split("_", 1)[1] for name in series if name.startswith(("validation_", "unseen_"))}
    metrics = [m for m in ("r_precision", "map_at_r", "precision_at_1") if m in found] + sorted(
        found - {"r_precision", "map_at_r", "precision_at_1"}
    )
    panels = [[name] for name in series if not name.startswith(("validation_", "unseen_"))]
    panels += [
        [f"{prefix}_{metric}" for prefix in ("validation", "unseen") if f"{prefix}_{metric}" in series]
        for metric in metrics
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
    for axis, names in zip(axes[0], panels):
        for name in names:
            steps, values = zip(*series[name])
            axis.plot(steps, values, marker="o" if len(steps) < 40 else None, markersize=3, label=name.split("_", 1)[0])
        unseen = "unseen_" + names[0].split("_", 1)[-1]
        if kept_epoch is not None and unseen not in names and unseen in final and names[0].startswith("validation_"):
            axis.plot(
                [kept_epoch],
                [final[unseen]],
                marker="*",
                markersize=10,
                linestyle="",
                color="#d95f02",
                label="unseen, kept model",
            )
        if kept_epoch is not None:
            axis.axvline(kept_epoch, color="#888888", linestyle="--", linewidth=1, label=f"kept epoch {kept_epoch}")
        axis.set_title(names[0] if len(names) == 1 else names[0].split("_", 1)[1])
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        if kept_epoch is not None or len(names) > 1:
            axis.legend(fontsize=7)
    return _save(figure, path)


def retrieval_grid(
    queries: Sequence[ImageRecord],
    neighbours: Sequence[Sequence[ImageRecord]],
    title: str,
    path: Path,
    thumb: int = 112,
) -> Path:
    """A row per query: the query, then its neighbours framed green (same class) or red (other class)."""
    columns = 1 + max(len(n) for n in neighbours)
    figure, axes = plt.subplots(len(queries), columns, figsize=(1.45 * columns, 2.1 * len(queries)), squeeze=False)
    for row, (query, found) in enumerate(zip(queries, neighbours)):
        cells = [(query, "query", "black")] + [
            (record, f"{rank}", CORRECT if record.class_name == query.class_name else WRONG)
            for rank, record in enumerate(found, start=1)
        ]
        for axis, (record, label, colour) in zip(axes[row], cells):
            with Image.open(record.path) as image:
                axis.imshow(to_rgb(image).resize((thumb, thumb)))
            axis.set_xticks([])
            axis.set_yticks([])
            for spine in axis.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(2 if label == "query" else 4)
            axis.set_title(label, fontsize=7, color=colour)
            axis.set_xlabel("\n".join(textwrap.wrap(record.class_name, 18)[:3]), fontsize=6)
        for axis in axes[row][len(cells) :]:
            axis.axis("off")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return _save(figure, path)
