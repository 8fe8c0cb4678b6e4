"""BodyLimit on its own: a body that trickles in too slowly gets a 408, not a worker held forever."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, File, UploadFile

from simtune.apps.images.service.body_limit import BodyLimit
from simtune.search import ImageTooLargeError


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/upload")
    async def upload(file: UploadFile = File(...)) -> dict:
        return {"size": len(await file.read())}

    from fastapi.responses import JSONResponse

    app.add_exception_handler(
        ImageTooLargeError, lambda request, error: JSONResponse({"detail": str(error)}, status_code=413)
    )
    return app


def _post(limited, chunks: list[bytes], stall: bool) -> list[dict]:
    boundary = "b"
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/upload",
        "raw_path": b"/upload",
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("test", 80),
        "client": ("test", 1),
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
        "headers": [(b"content-type", f"multipart/form-data; boundary={boundary}".encode())],
    }
    messages = [{"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks]
    sent: list[dict] = []

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        if stall:
            await asyncio.sleep(3600)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(asyncio.wait_for(limited(scope, receive, send), 10))
    return sent


def test_a_stalled_body_is_a_408_and_a_prompt_one_is_read():
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\nabc'
    limited = BodyLimit(_app(), max_bytes=10_000, upload_limit=9_000, timeout_s=0.3)
    stalled = _post(limited, [head], stall=True)
    assert stalled[0]["status"] == 408 and b"did not arrive within 0.3 s" in stalled[1]["body"]
    prompt = _post(limited, [head, b"\r\n--b--\r\n"], stall=False)
    assert prompt[0]["status"] == 200 and prompt[1]["body"] == b'{"size":3}'
