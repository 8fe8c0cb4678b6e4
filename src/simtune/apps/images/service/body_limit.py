"""An ASGI middleware that caps request bodies while they stream in."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simtune.search import ImageTooLargeError


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` while they stream in, announced (Content-Length) or not
    (chunked), so an oversized upload is never spooled to disk in full."""

    def __init__(self, app: ASGIApp, max_bytes: int, upload_limit: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.message = f"the request body exceeds the upload limit of {upload_limit / 2**20:.1f} MiB"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await JSONResponse({"detail": self.message}, status_code=413)(scope, receive, send)
        received = 0
        replaced = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise ImageTooLargeError(self.message)  # aborts parsing; the app's error reply is swapped below
            return message

        async def checked_send(message: Message) -> None:
            nonlocal replaced
            if received > self.max_bytes and not replaced:
                replaced = True
                await JSONResponse({"detail": self.message}, status_code=413)(scope, receive, send)
            if not replaced:
                await send(message)

        await self.app(scope, limited_receive, checked_send)
