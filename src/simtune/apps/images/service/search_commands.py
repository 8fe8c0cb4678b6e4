"""index / search / serve commands. Heavy imports happen inside each command.

Each command takes the app's preset first; ``simtune.apps.images.cli`` binds it (see ``bind_preset``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from simtune.apps.images.data.preset import Preset
from simtune.apps.images.run.commands import device_option
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
# One client address may hold this many, so a single client cannot take all of them.
MAX_CONNECTIONS_PER_CLIENT = 64

# Where the index lives: the same five options on index, search and serve.
_RUN = typer.Option(Path("runs/images"), "--run", help=RUN_HELP)
_INDEX = typer.Option(None, "--index", help=INDEX_HELP)
_QDRANT_URL = typer.Option(None, "--qdrant-url", help=URL_HELP)
_API_KEY = typer.Option(None, "--api-key", envvar="QDRANT_API_KEY", help="Qdrant API key.")
_COLLECTION = typer.Option("images", "--collection", help="Collection name on the Qdrant server.")
_QUERY_DEVICE = device_option("cpu", "the query photos are encoded")


def _load_model(run: Path, device: Any) -> Any:
    """The run's model on ``device`` (a ``torch.device``), or a ValueError naming the damaged or missing file."""
    from torch import nn

    from simtune.apps.images.data.run_folder import Run

    try:
        model = Run(run).model()
    except (ValueError, OSError) as error:
        raise ValueError(f"cannot load the model of {run}: {error}") from None
    return model.to(device) if isinstance(model, nn.Module) else model


def _location(run: Path, index: Path | None, qdrant_url: str | None, api_key: str | None, collection: str) -> Any:
    from simtune.apps.images.service.indexing import IndexLocation

    return IndexLocation.for_run(run, index, qdrant_url, api_key, collection)


def index_command(
    preset: Preset,
    data: Path = typer.Option(
        ..., "--data", help="A folder of photos: searched recursively, or class folders, or a labels.csv."
    ),
    run: Path = _RUN,
    metadata: Path | None = typer.Option(
        None, "--metadata", help="CSV: a 'path' column (relative to --data) and any columns, each a filter field."
    ),
    backbone: str | None = typer.Option(
        None, "--backbone", help="For a run without a model: the pretrained backbone to index with (default lite0)."
    ),
    plain: bool = typer.Option(False, "--plain", help="Index every image under --data; ignore class folders."),
    quantization: str = typer.Option(
        "none", "--quantization", help="A new index's vectors: none (float32) or int8 (scalar, with rescoring)."
    ),
    on_disk: bool = typer.Option(False, "--on-disk", help="A new index keeps vectors, graph and payloads on disk."),
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Embed every image again into a new index (e.g. after training a new model)."
    ),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per model batch."),
    workers: int = typer.Option(2, "--workers", min=0, help="Decoding processes (0: decode in this one)."),
    device: str = device_option("auto", "the photos are encoded"),
    index: Path | None = _INDEX,
    qdrant_url: str | None = _QDRANT_URL,
    api_key: str | None = _API_KEY,
    collection: str = _COLLECTION,
) -> None:
    """Keep the index in sync with a folder: embed new and changed photos, drop deleted ones (resumable)."""
    from simtune.apps.images.data.run_folder import Run
    from simtune.apps.images.service import indexing
    from simtune.apps.images.service.catalog.sync import sync_catalog
    from simtune.devices import select_device
    from simtune.folder_lock import locked_folder
    from simtune.search.storage import StorageOptions

    select_device(device)  # absent hardware is refused before any work
    location = _location(run, index, qdrant_url, api_key, collection)
    storage = StorageOptions(quantization, on_disk) if (quantization != "none" or on_disk) else None
    with locked_folder(run):  # one writer of the run folder at a time
        model, created = indexing.model_for_index(run, backbone)
        if created:
            typer.echo(
                f"{run} holds no tuned model: indexing with the pretrained {backbone or 'lite0'} backbone "
                f"(flip-averaged), saved to {Run(run).model_dir} for search and serve once indexed"
            )
        result = sync_catalog(
            data,
            location,
            model,
            preset=preset,
            run_dir=run,
            metadata=metadata,
            plain=plain,
            storage=storage,
            batch_size=batch_size,
            workers=workers,
            rebuild=rebuild,
            known_vectors=None if created else lambda: indexing.training_vectors(run, model, data, device) or {},
            device=device,
        )
        if created:
            model.save(Run(run).model_dir)
    for line in result.problems.lines():
        typer.echo(f"skipped: {line}")
    resumed = " (continued an interrupted run)" if result.resumed else ""
    typer.echo(f"indexed {result.layout} folder{resumed}: {result.summary()}; {result.points} points in {location}")
    typer.echo(f"serve it:  {indexing.serve_hint(run, location, preset.name)}")


def search_command(
    preset: Preset,
    image: Path = typer.Argument(..., help="A photo to search with."),
    run: Path = _RUN,
    k: int = typer.Option(10, "--k", help="How many similar images (1 to 1000)."),
    filter: list[str] | None = typer.Option(None, "--filter", help=FILTER_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    device: str = _QUERY_DEVICE,
    index: Path | None = _INDEX,
    qdrant_url: str | None = _QDRANT_URL,
    api_key: str | None = _API_KEY,
    collection: str = _COLLECTION,
) -> None:
    """Print the indexed images most similar to IMAGE: rank, score, class and path."""
    from simtune.apps.images.service.indexing import open_index
    from simtune.devices import select_device
    from simtune.search import parse_filters
    from simtune.search.query_image import load_query_image

    target = select_device(device)  # absent hardware is refused before any work
    location = _location(run, index, qdrant_url, api_key, collection)
    conditions = parse_filters(filter)
    query = load_query_image(image)  # bad images fail before the model is loaded
    model = _load_model(run, target)
    with open_index(location, model) as vector_index:
        vector_index.schema.check_k(k)
        vector_index.schema.check_filter(conditions)
        hits = vector_index.search(model.encode([query], batch_size=1, to_numpy=True)[0], k=k, filter=conditions)
    if as_json:
        typer.echo(json.dumps([{"id": h.id, "score": h.score, **h.payload} for h in hits], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    classes = any("class_name" in hit.payload for hit in hits)  # a plain folder's images have none
    table = Table("rank", "score", *(["class"] if classes else []), "path", title=f"{preset.noun} similar to {image}")
    for rank, hit in enumerate(hits, start=1):
        cells = [str(rank), f"{hit.score:.4f}"] + ([hit.payload.get("class_name", "")] if classes else [])
        table.add_row(*cells, hit.payload.get("path", ""))
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
    auth_token: str | None = typer.Option(
        None,
        "--auth-token",
        envvar="SIMTUNE_AUTH_TOKEN",
        help="Require this token on every route but /health (Authorization: Bearer TOKEN, or a browser's "
        "password prompt). Set it whenever --host reaches beyond this machine.",
    ),
    allow_host: list[str] | None = typer.Option(
        None,
        "--allow-host",
        help="Another Host header to accept (a DNS name the server is reached by), repeatable; '*' accepts any. "
        "Always accepted: localhost, 127.0.0.1, ::1 and --host (for 0.0.0.0: this machine's name and addresses).",
    ),
    max_connections_per_client: int = typer.Option(
        MAX_CONNECTIONS_PER_CLIENT,
        "--max-connections-per-client",
        min=0,
        help="Connections one client address may hold at once (0: no cap; behind a reverse proxy every client "
        "shares its address: cap them in the proxy instead).",
    ),
    device: str = _QUERY_DEVICE,
) -> None:
    """Serve the web page (/), the HTTP API (/search, /search/{id}, /images/{id}, /health) and its docs (/docs)."""
    import uvicorn

    from simtune.apps.images.service.connection_guard import server_config
    from simtune.apps.images.service.indexing import open_index
    from simtune.apps.images.service.serve import create_app
    from simtune.devices import select_device

    target = select_device(device)  # absent hardware is refused before any work
    location = _location(run, index, qdrant_url, api_key, collection)
    if not auth_token and not _is_loopback(host):
        typer.echo(
            f"warning: serving on {host} without --auth-token: anyone who reaches port {port} can search the index "
            "and read its images; set --auth-token (or SIMTUNE_AUTH_TOKEN)",
            err=True,
        )
    model = _load_model(run, target)
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
        auth_token=auth_token,
        allowed_hosts=_allowed_hosts(host, allow_host or []),
    )
    config = server_config(web_app, MAX_CONNECTIONS, max_connections_per_client)
    typer.echo(
        f"serving {vector_index.count()} {preset.noun} from {location} at http://{host}:{port}/ (API docs: /docs)"
    )
    try:
        uvicorn.Server(config).run(sockets=[listening])
    finally:
        listening.close()
        vector_index.close()


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _allowed_hosts(host: str, extra: list[str]) -> list[str] | None:
    """The Host headers the server answers (None: any); anything else is refused, so a web page whose DNS name
    was rebound to this machine's address cannot make a browser talk to it."""
    import socket

    if "*" in extra:
        return None
    names = {"localhost", "127.0.0.1", "::1", host, *extra}
    if host in ("0.0.0.0", "::", ""):  # every interface: the names and addresses this machine is reached by
        names |= {socket.gethostname(), socket.getfqdn()}
        try:
            names |= {str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None)}
        except OSError:
            pass
    return sorted(f"[{name}]" if ":" in name else name for name in names)  # IPv6 Host headers are bracketed


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
