"""index / search / serve commands. Heavy imports happen inside each command.

Each command takes the app's preset first; ``simtune.apps.images.cli`` binds it (see ``bind_preset``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from simtune.apps.images.data.preset import Preset
from simtune.command_errors import fail

RUN_HELP = "Run folder holding the tuned model (RUN/model); the embedded index defaults to RUN/index."
INDEX_HELP = "Embedded index folder (default RUN/index)."
URL_HELP = "A Qdrant server or cluster instead of the embedded index, e.g. http://localhost:6333."
FILTER_HELP = (
    "FIELD=VALUE, repeatable (all must hold); fields: class_name, the collection's own (e.g. make, year for cars), "
    "split (the data set's, e.g. train/test), subset (train/validation/unseen)."
)

# Connections beyond this get an immediate 503 instead of queueing without bound.
MAX_CONNECTIONS = 512

# Where the index lives: the same five options on index, search and serve.
_RUN = typer.Option(Path("runs/images"), "--run", help=RUN_HELP)
_INDEX = typer.Option(None, "--index", help=INDEX_HELP)
_QDRANT_URL = typer.Option(None, "--qdrant-url", help=URL_HELP)
_API_KEY = typer.Option(None, "--api-key", envvar="QDRANT_API_KEY", help="Qdrant API key.")
_COLLECTION = typer.Option("images", "--collection", help="Collection name on the Qdrant server.")


def _load_model(run: Path) -> Any:
    """The run's model, or a ValueError naming the damaged or missing file."""
    from simtune.apps.images.data.run_folder import Run

    try:
        return Run(run).model()
    except (ValueError, OSError) as error:
        raise ValueError(f"cannot load the model of {run}: {error}") from None


def _location(run: Path, index: Path | None, qdrant_url: str | None, api_key: str | None, collection: str) -> Any:
    from simtune.apps.images.service.indexing import IndexLocation

    return IndexLocation.for_run(run, index, qdrant_url, api_key, collection)


def index_command(
    preset: Preset,
    data: Path = typer.Option(..., "--data", help="The photos (any layout `train` reads)."),
    run: Path = _RUN,
    index: Path | None = _INDEX,
    qdrant_url: str | None = _QDRANT_URL,
    api_key: str | None = _API_KEY,
    collection: str = _COLLECTION,
) -> None:
    """Embed every photo with the run's tuned model and upsert it into the index (idempotent)."""
    from simtune.apps.images.data.dataset import prepare_dataset
    from simtune.apps.images.service.indexing import index_run, serve_hint

    location = _location(run, index, qdrant_url, api_key, collection)
    dataset, _ = prepare_dataset(data, run, preset=preset)
    where, count = index_run(run, dataset, location=location)
    typer.echo(f"indexed {len(dataset.records)} images; {count} points in {where}")
    typer.echo(f"serve it:  {serve_hint(run, where, preset.name)}")


def search_command(
    preset: Preset,
    image: Path = typer.Argument(..., help="A photo to search with."),
    run: Path = _RUN,
    k: int = typer.Option(10, "--k", help="How many similar images (1 to 1000)."),
    filter: list[str] | None = typer.Option(None, "--filter", help=FILTER_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    index: Path | None = _INDEX,
    qdrant_url: str | None = _QDRANT_URL,
    api_key: str | None = _API_KEY,
    collection: str = _COLLECTION,
) -> None:
    """Print the indexed images most similar to IMAGE: rank, score, class and path."""
    from simtune.apps.images.service.indexing import open_index
    from simtune.search import parse_filters
    from simtune.search.query_image import load_query_image

    location = _location(run, index, qdrant_url, api_key, collection)
    conditions = parse_filters(filter)
    query = load_query_image(image)  # bad images fail before the model is loaded
    model = _load_model(run)
    with open_index(location, model) as vector_index:
        vector_index.schema.check_k(k)
        vector_index.schema.check_filter(conditions)
        hits = vector_index.search(model.encode([query], batch_size=1, to_numpy=True)[0], k=k, filter=conditions)
    if as_json:
        typer.echo(json.dumps([{"id": h.id, "score": h.score, **h.payload} for h in hits], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("rank", "score", "class", "path", title=f"{preset.noun} similar to {image}")
    for rank, hit in enumerate(hits, start=1):
        table.add_row(str(rank), f"{hit.score:.4f}", hit.payload.get("class_name", ""), hit.payload.get("path", ""))
    Console().print(table)


def serve_command(
    preset: Preset,
    run: Path = _RUN,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (127.0.0.1: this machine only)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    index: Path | None = _INDEX,
    qdrant_url: str | None = _QDRANT_URL,
    api_key: str | None = _API_KEY,
    collection: str = _COLLECTION,
    max_upload_mb: float = typer.Option(10.0, "--max-upload-mb", min=0.01, help="Largest accepted upload."),
    max_pixels: int = typer.Option(40_000_000, "--max-pixels", min=1, help="Largest accepted image (width x height)."),
) -> None:
    """Serve the web page (/), the HTTP API (/search, /search/{id}, /images/{id}, /health) and its docs (/docs)."""
    import uvicorn

    from simtune.apps.images.service.indexing import open_index
    from simtune.apps.images.service.request_head_deadline import RequestHeadDeadline
    from simtune.apps.images.service.serve import create_app

    location = _location(run, index, qdrant_url, api_key, collection)
    model = _load_model(run)
    vector_index = open_index(location, model)
    try:
        listening = _listen(host, port)
    except OSError as error:
        vector_index.close()
        fail(f"cannot listen on {host}:{port}: {error.strerror or error}; choose another --port or --host")
    web_app = create_app(
        vector_index,
        model,
        max_upload_bytes=int(max_upload_mb * 2**20),
        max_pixels=max_pixels,
        title=preset.title,
        noun=preset.noun,
    )
    config = uvicorn.Config(
        web_app, log_level="warning", http=RequestHeadDeadline, timeout_keep_alive=5, limit_concurrency=MAX_CONNECTIONS
    )
    typer.echo(
        f"serving {vector_index.count()} {preset.noun} from {location} at http://{host}:{port}/ (API docs: /docs)"
    )
    try:
        uvicorn.Server(config).run(sockets=[listening])
    finally:
        listening.close()
        vector_index.close()


def _listen(host: str, port: int) -> Any:
    """A bound socket, so a busy port fails before anything claims to be serving."""
    import socket

    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
        0
    ]
    listening = socket.socket(family, kind, proto)
    try:
        listening.setsockopt(
            socket.SOL_SOCKET, socket.SO_REUSEADDR, 1
        )  # reuse TIME_WAIT only; a live listener still fails
        listening.bind(address)
        listening.listen(2048)
    except OSError:
        listening.close()
        raise
    return listening
