"""An ASGI middleware that caps request bodies, in size and in time, while they stream in."""

from __future__ import annotations

import asyncio

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simtune.search import ImageTooLargeError

BODY_TIMEOUT_S = 60.0


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` while they stream in, announced (Content-Length) or not
    (chunked), so an oversized upload is never spooled to disk in full; and bodies that have not fully
    arrived ``timeout_s`` after the request began (408), so a trickling client cannot hold a worker."""

    def __init__(self, app: ASGIApp, max_bytes: int, upload_limit: int, timeout_s: float = BODY_TIMEOUT_S) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.message = (
            f"the request body exceeds the upload limit of {upload_limit:,} bytes ({upload_limit / 2**20:g} MiB)"
        )
        self.timeout_message = f"the request body did not arrive within {timeout_s:g} s"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await JSONResponse({"detail": self.message}, status_code=413)(scope, receive, send)
        received = 0
        body_done = False
        refusal: JSONResponse | None = None
        replaced = False
        deadline = asyncio.get_running_loop().time() + self.timeout_s

        async def limited_receive() -> Message:
            nonlocal received, body_done, refusal
            if body_done:
                return await receive()  # e.g. waiting for a disconnect: no deadline
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - asyncio.get_running_loop().time()))
            except asyncio.TimeoutError:
                refusal = JSONResponse(
                    {"detail": self.timeout_message}, status_code=408, headers={"Connection": "close"}
                )
                raise ImageTooLargeError(self.timeout_message) from None  # aborts parsing, like the size limit
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                refusal = JSONResponse({"detail": self.message}, status_code=413)
                raise ImageTooLargeError(self.message)  # aborts parsing; the app's error reply is swapped below
            return message

        async def checked_send(message: Message) -> None:
            nonlocal replaced
            if refusal is not None and not replaced:
                replaced = True
                await refusal(scope, receive, send)
            if not replaced:
                await send(message)

        await self.app(scope, limited_receive, checked_send)
