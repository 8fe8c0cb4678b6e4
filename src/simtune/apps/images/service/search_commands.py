"""index / search / serve commands (issue: Similar cars search). Heavy imports happen inside each command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer

from simtune.apps.cars.cli import app

RUN_HELP = "Run folder holding the tuned model (RUN/model); the embedded index defaults to RUN/index."
INDEX_HELP = "Embedded index folder (default RUN/index)."
URL_HELP = "A Qdrant server or cluster instead of the embedded index, e.g. http://localhost:6333."
FILTER_HELP = "FIELD=VALUE, repeatable (all must hold); fields: make, year, class_name, split (train/test), subset (train/unseen)."

# Where the index lives: the same five options on index, search and serve.
_RUN = typer.Option(Path("runs/cars"), "--run", help=RUN_HELP)
_INDEX = typer.Option(None, "--index", help=INDEX_HELP)
_QDRANT_URL = typer.Option(None, "--qdrant-url", help=URL_HELP)
_API_KEY = typer.Option(None, "--api-key", envvar="QDRANT_API_KEY", help="Qdrant API key.")
_COLLECTION = typer.Option("cars", "--collection", help="Collection name on the Qdrant server.")


def _fail(message: str) -> NoReturn:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(2)


def _location(run: Path, index: Optional[Path], qdrant_url: Optional[str], api_key: Optional[str], collection: str) -> Any:
    from simtune.apps.images.service.indexing import IndexLocation

    try:
        return IndexLocation.for_run(run, index, qdrant_url, api_key, collection)
    except ValueError as error:
        _fail(str(error))


@app.command("index")
def index_command(
    data: Path = typer.Option(..., "--data", help="The car photos (any layout `simtune cars train` reads)."),
    run: Path = _RUN,
    index: Optional[Path] = _INDEX,
    qdrant_url: Optional[str] = _QDRANT_URL,
    api_key: Optional[str] = _API_KEY,
    collection: str = _COLLECTION,
) -> None:
    """Embed every car photo with the run's tuned model and upsert it into the index (idempotent)."""
    from simtune.apps.images.data.dataset import prepare_dataset
    from simtune.apps.images.service.indexing import index_run, serve_hint
    from simtune.search import SearchError

    location = _location(run, index, qdrant_url, api_key, collection)
    try:
        dataset, _ = prepare_dataset(data, run)
        where, count = index_run(run, dataset, location=location)
    except (SearchError, FileNotFoundError, ValueError) as error:
        _fail(str(error))
    typer.echo(f"indexed {len(dataset.records)} images; {count} points in {where}")
    typer.echo(f"serve it:  {serve_hint(run, where)}")


@app.command("search")
def search_command(
    image: Path = typer.Argument(..., help="A car photo to search with."),
    run: Path = _RUN,
    k: int = typer.Option(10, "--k", help="How many similar cars (1 to 1000)."),
    filter: Optional[list[str]] = typer.Option(None, "--filter", help=FILTER_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    index: Optional[Path] = _INDEX,
    qdrant_url: Optional[str] = _QDRANT_URL,
    api_key: Optional[str] = _API_KEY,
    collection: str = _COLLECTION,
) -> None:
    """Print the cars most similar to IMAGE: rank, score, class and path."""
    from simtune.apps.images.service.indexing import load_run_model, open_index
    from simtune.search import SearchError, parse_filters
    from simtune.search.query_image import load_query_image

    location = _location(run, index, qdrant_url, api_key, collection)
    try:
        conditions = parse_filters(filter)
        query = load_query_image(image)  # bad images fail before the model is loaded
        model = load_run_model(run)
        with open_index(location, model) as vector_index:
            vector_index.schema.check_k(k)
            vector_index.schema.check_filter(conditions)
            hits = vector_index.search(model.encode([query], batch_size=1, to_numpy=True)[0], k=k, filter=conditions)
    except (SearchError, FileNotFoundError) as error:
        _fail(str(error))
    if as_json:
        typer.echo(json.dumps([{"id": h.id, "score": h.score, **h.payload} for h in hits], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("rank", "score", "class", "path", title=f"cars similar to {image}")
    for rank, hit in enumerate(hits, start=1):
        table.add_row(str(rank), f"{hit.score:.4f}", hit.payload.get("class_name", ""), hit.payload.get("path", ""))
    Console().print(table)


@app.command("serve")
def serve_command(
    run: Path = _RUN,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (127.0.0.1: this machine only)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    index: Optional[Path] = _INDEX,
    qdrant_url: Optional[str] = _QDRANT_URL,
    api_key: Optional[str] = _API_KEY,
    collection: str = _COLLECTION,
    max_upload_mb: float = typer.Option(10.0, "--max-upload-mb", min=0.01, help="Largest accepted upload."),
    max_pixels: int = typer.Option(40_000_000, "--max-pixels", min=1, help="Largest accepted image (width x height)."),
) -> None:
    """Serve the web page (/), the HTTP API (/search, /search/{id}, /images/{id}, /health) and its docs (/docs)."""
    import uvicorn

    from simtune.apps.images.service.indexing import load_run_model, open_index
    from simtune.apps.images.service.serve import create_app
    from simtune.search import SearchError

    location = _location(run, index, qdrant_url, api_key, collection)
    try:
        model = load_run_model(run)
        vector_index = open_index(location, model)
    except (SearchError, FileNotFoundError) as error:
        _fail(str(error))
    web_app = create_app(vector_index, model, max_upload_bytes=int(max_upload_mb * 2**20), max_pixels=max_pixels)
    typer.echo(f"serving {vector_index.count()} cars from {location} at http://{host}:{port}/ (API docs: /docs)")
    try:
        uvicorn.run(web_app, host=host, port=port, log_level="warning")
    finally:
        vector_index.close()
