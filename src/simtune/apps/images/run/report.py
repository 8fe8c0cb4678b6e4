"""``report.html``: one self-contained file (figures embedded as base64) that can be mailed or opened offline."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from simtune.atomic import write_bytes

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; } img { max-width: 100%; } .note { color: #555; }
"""


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def _metrics_table(base: dict[str, float], tuned: dict[str, float]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{base[name]:.4f}</td><td>{tuned[name]:.4f}</td>"
        f"<td>{tuned[name] - base[name]:+.4f}</td></tr>"
        for name in tuned
        if name in base
    )
    return f"<table><tr><th>metric</th><th>base</th><th>tuned</th><th>change</th></tr>{rows}</table>"


def _list(items: list[str], limit: int = 10) -> str:
    shown = "".join(f"<li>{html.escape(str(i))}</li>" for i in items[:limit])
    more = f"<li>... and {len(items) - limit} more</li>" if len(items) > limit else ""
    return f"<ul>{shown}{more}</ul>"


def write_report(path: Path, metrics: dict[str, Any], figures: dict[str, Path], notes: dict[str, Any]) -> Path:
    """``metrics``: the metrics.json content; ``figures``: heading -> PNG; ``notes``: dataset and training facts."""
    base, tuned = metrics["base"], metrics["tuned"]
    data = notes["data"]
    title = html.escape(notes.get("title", "Similar images"))
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>simtune report: {title}</title>"
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{title}: frozen encoder vs tuned model</h1>",
        f"<p>Judged on <b>{data['unseen_classes']} classes the model never saw</b> "
        f"({data['unseen_images']} {html.escape(notes.get('noun', 'images'))}; trained on "
        f"{data['train_classes']} other classes, {data['train_images']} images, and steered by "
        f"{data['validation_classes']} validation classes, {data['validation_images']} images). "
        "Exact leave-one-out retrieval: every unseen image queries all the others.</p>",
        _metrics_table(base, tuned),
    ]
    if notes.get("selection"):
        parts.append(
            f"<h2>Kept epoch</h2><p>Epoch {notes['selection']['kept_epoch']} was kept: "
            f"{html.escape(notes['selection']['reason'])}. The unseen classes played no part in this choice.</p>"
        )
    if data["single_image_classes"]:
        parts.append(
            f"<p class='note'>{len(data['single_image_classes'])} unseen class(es) have a single image: kept in the "
            f"gallery, but they cannot be queries (nothing to find).</p>" + _list(data["single_image_classes"])
        )
    if data["skipped"]:
        parts.append(
            f"<p class='note'>{len(data['skipped'])} unreadable image(s) skipped:</p>" + _list(data["skipped"])
        )
    if data["missing"]:
        parts.append(f"<p class='note'>{len(data['missing'])} listed file(s) missing:</p>" + _list(data["missing"]))
    if data.get("duplicates"):
        parts.append(
            f"<p class='note'>{len(data['duplicates'])} duplicate(s) dropped (listed twice, or byte-identical to a "
            "kept image), so no image finds its own copy:</p>" + _list(data["duplicates"])
        )
    if data.get("label_conflicts"):
        parts.append(
            f"<p class='note'>{len(data['label_conflicts'])} image(s) dropped: byte-identical copies labelled with "
            "different classes (which label is right is unknown):</p>" + _list(data["label_conflicts"])
        )
    if data.get("unread_folders"):
        parts.append(
            f"<p class='note'>{len(data['unread_folders'])} folder(s) of images nested deeper than the layout "
            "reads were not read:</p>" + _list(data["unread_folders"])
        )
    parts.append(
        "<h2>Training</h2><table>"
        + "".join(
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in notes["training"].items()
        )
        + "</table>"
    )
    for heading, figure in figures.items():
        parts.append(f"<h2>{html.escape(heading)}</h2>{_image(figure)}")
    parts.append("</body></html>")
    write_bytes(path, "\n".join(parts).encode())
    return path
