"""Starlette's Host check with its refusal in JSON, as every other 4xx of the API answers."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_PASSED = "simtune.host_checked"  # set in the request's scope once the check let it through


class JsonTrustedHost(TrustedHostMiddleware):
    """``TrustedHostMiddleware``, whose own 400 is plain text, answering ``{"detail": reason}`` instead.

    Starlette builds that response inside its ``__call__``, so the matching (wildcards, ports, IPv6) stays
    Starlette's and only the answer is swapped: a 400 sent before the request reached the app is the check's.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        async def passed(scope: Scope, receive: Receive, send: Send) -> None:
            scope[_PASSED] = True
            await app(scope, receive, send)

        super().__init__(passed, allowed_hosts=allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = False

        async def json_send(message: Message) -> None:
            nonlocal refused
            if scope.get(_PASSED):
                await send(message)
            elif message["type"] == "http.response.start" and message["status"] == 400:
                refused = True
                host = Headers(scope=scope).get("host")
                reason = (
                    f"the Host header {host!r} names no host this server answers to"
                    if host
                    else "the request has no Host header"
                )
                await JSONResponse({"detail": reason}, status_code=400)(scope, receive, send)
            elif not refused:
                await send(message)

        await super().__call__(scope, receive, json_send)
