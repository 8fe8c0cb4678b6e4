"""The similar-images HTTP API and web page: ``create_app(index, model)`` -> a FastAPI app.

The page asks ``/page`` for its title and filter boxes: the class name and the metadata fields the
index was built with (make and year for cars), so the same page serves any collection.

Every bad input is a 4xx with ``{"detail": message}``: the ``simtune.search`` errors carry the
message, this module only picks the status. The app holds no state besides the index and model, so
one process serves many concurrent clients (endpoints run in FastAPI's thread pool).

Exposure: with ``auth_token`` every route but ``/health`` asks for it (``RequireToken``); with
``allowed_hosts`` a request naming another host (a DNS-rebinding page in a browser) is refused with a JSON
400 (Starlette's ``TrustedHostMiddleware``, see ``host_check``). ``/docs`` serves its Swagger UI files from
the ``fastapi-offline`` package, so it works without internet. ``/health`` answers 503 when a file of the
index went missing or changed size since it was opened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

import simtune
from simtune.apps.images.service.access_token import RequireToken
from simtune.apps.images.service.body_limit import BodyLimit
from simtune.apps.images.service.host_check import JsonTrustedHost
from simtune.apps.images.service.indexed_image import read_indexed_image
from simtune.search import (
    MAX_K,
    Embedder,
    ImageTooLargeError,
    IndexUnavailableError,
    InvalidImageError,
    InvalidQueryError,
    ModelMismatchError,
    SearchError,
    SearchHit,
    UnknownPointError,
    VectorIndex,
    parse_filters,
    parse_point_id,
)
from simtune.search.query_image import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, decode_query_image

STATIC_DIR = Path(__file__).parent / "static"
# Filterable over the API, but not offered as boxes on the page.
PAGE_HIDDEN_FIELDS = ("split", "subset")
# Multipart boundaries and the k/filter fields ride along with the image in the request body.
FORM_OVERHEAD_BYTES = 64 * 1024
_STATUS = {
    InvalidQueryError: 400,
    InvalidImageError: 400,
    UnknownPointError: 404,
    ModelMismatchError: 409,
    ImageTooLargeError: 413,
    IndexUnavailableError: 503,
}


def create_app(
    index: VectorIndex,
    model: Embedder,
    max_upload_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    title: str = "Similar images",
    noun: str = "images",
    auth_token: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
) -> FastAPI:
    """The API over ``index``; ``model`` embeds uploads and must be the model the index was built with.
    ``title`` and ``noun`` ("cars") are the words of the page and the API docs; ``auth_token`` and
    ``allowed_hosts`` (None: any) guard an exposed server (see the module docstring)."""
    index.schema.check_model(model.fingerprint(), model.embedding_size)
    app = FastAPIOffline(
        title=f"simtune: {title.lower()}",
        version=simtune.__version__,
        description=f"Upload a photo, get the most similar indexed {noun}.",
        redoc_url=None,
    )
    for error_type, status in _STATUS.items():
        app.add_exception_handler(error_type, _json_error(status))
    app.add_exception_handler(Exception, _engine_failure(index))

    app.add_middleware(BodyLimit, max_bytes=max_upload_bytes + FORM_OVERHEAD_BYTES, upload_limit=max_upload_bytes)
    if auth_token:
        app.add_middleware(RequireToken, token=auth_token)
    if allowed_hosts is not None:
        app.add_middleware(JsonTrustedHost, allowed_hosts=list(allowed_hosts))

    @_get_and_head(app, "/health", response_model=None)
    def health() -> dict[str, Any] | JSONResponse:
        try:
            index.verify_files()
            points = index.count()
        except SearchError as error:
            return JSONResponse({"status": "unavailable", "detail": str(error)}, status_code=503)
        return {
            "status": "ok",
            "points": points,
            "model": index.schema.fingerprint,
            "embedding_size": index.schema.embedding_size,
            "filter_fields": sorted(index.schema.filter_fields),
        }

    @_get_and_head(app, "/page")
    def page_config() -> dict[str, Any]:
        """The page's words and filter boxes: every filterable field but the run's bookkeeping (split, subset)."""
        fields = index.schema.filter_fields
        return {
            "title": title,
            "noun": noun,
            "filters": [
                {"name": name, "type": kind} for name, kind in fields.items() if name not in PAGE_HIDDEN_FIELDS
            ],
        }

    @app.post("/search")
    async def search_upload(
        file: UploadFile = File(..., description="A photo (JPEG, PNG, WebP, ...)."),
        k: int = Form(10, description=f"How many similar images, 1 to {MAX_K}."),
        filter: list[str] = Form([], description="FIELD=VALUE, e.g. make=BMW; repeat to combine."),
    ) -> dict[str, Any]:
        """The indexed images most similar to an uploaded photo."""
        data = await file.read(max_upload_bytes + 1)
        name = f"upload {file.filename!r}" if file.filename else "upload"
        if len(data) > max_upload_bytes:  # only the first limit + 1 bytes were read: its size is unknown
            raise ImageTooLargeError(
                f"{name} is over the limit of {max_upload_bytes:,} bytes ({max_upload_bytes / 2**20:g} MiB)"
            )

        def run() -> list[SearchHit]:
            conditions = parse_filters(filter)
            index.schema.check_k(k)
            index.schema.check_filter(conditions)
            image = decode_query_image(data, name, max_upload_bytes, max_pixels)
            vector = model.encode([image], batch_size=1, to_numpy=True)[0]
            return index.search(vector, k=k, filter=conditions)

        return {"k": k, "results": [_hit_json(hit) for hit in await run_in_threadpool(run)]}

    @_get_and_head(app, "/search/{point_id}")
    def search_indexed(
        point_id: str,
        k: int = Query(10, description=f"How many similar images, 1 to {MAX_K}."),
        filter: list[str] = Query([], description="FIELD=VALUE, e.g. make=BMW; repeat to combine."),
    ) -> dict[str, Any]:
        """The indexed images most similar to an indexed one (itself excluded)."""
        point_id = parse_point_id(point_id)
        hits = index.similar_to(point_id, k=k, filter=parse_filters(filter))
        _, payload = index.get(point_id)
        return {"query": _hit_json(SearchHit(point_id, 1.0, payload)), "k": k, "results": [_hit_json(h) for h in hits]}

    @_get_and_head(app, "/random")
    def random_image() -> dict[str, Any]:
        """One random indexed image (for the page's "random" button)."""
        hits = index.sample(1)
        if not hits:
            raise UnknownPointError("the index is empty")
        return _hit_json(hits[0])

    @_get_and_head(
        app, "/images/{image_id:path}", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}}
    )
    def image(image_id: str) -> Response:
        """The photo of an indexed point; nothing else on the server's disk is reachable."""
        point_id = parse_point_id(image_id)
        _, payload = index.get(point_id)
        found = read_indexed_image(payload.get("path"), index.schema.data_root)
        if found is None:  # one answer for missing, moved, linked elsewhere or not an image: no path, no hint
            raise UnknownPointError(f"the image of point {point_id} is not available on this server")
        data, media_type = found
        return Response(data, media_type=media_type, headers={"Cache-Control": "max-age=3600"})

    @_get_and_head(app, "/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _get_and_head(app: FastAPI, path: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``@app.get`` that answers HEAD too (HTTP's GET without the body; FastAPI's GET routes answer 405),
    with HEAD kept out of the API docs, where it would repeat every GET."""

    def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        app.head(path, **{**options, "include_in_schema": False})(endpoint)
        return app.get(path, **options)(endpoint)

    return register


def _hit_json(hit: SearchHit) -> dict[str, Any]:
    """Payload minus the server-side path, plus where to fetch the photo."""
    fields = {key: value for key, value in hit.payload.items() if key != "path"}
    return {"id": hit.id, "score": hit.score, **fields, "image_url": f"/images/{hit.id}"}


def _json_error(status: int) -> Any:
    async def handler(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=status)

    return handler


def _engine_failure(index: VectorIndex) -> Any:
    """An unexpected error: 503 naming the damage when the index's files changed under the server, else 500."""

    async def handler(request: Request, error: Exception) -> JSONResponse:
        try:
            index.verify_files()
        except SearchError as damage:
            return JSONResponse({"detail": str(damage)}, status_code=503)
        return JSONResponse({"detail": f"internal error: {type(error).__name__}"}, status_code=500)

    return handler
