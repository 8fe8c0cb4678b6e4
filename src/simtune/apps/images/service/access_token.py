"""An ASGI middleware that asks every request but the health check for the server's access token."""

from __future__ import annotations

import base64
import binascii
import hmac

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/health"})  # load balancers and uptime checks carry no token


class RequireToken:
    """Accepts ``Authorization: Bearer TOKEN`` (scripts) or HTTP Basic with TOKEN as the password and any user
    name (browsers: the 401 makes them ask once and send it with every request of the page). The comparison
    takes the same time wherever the first wrong byte is, so the token cannot be guessed byte by byte."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self._presented(scope):
            return await self.app(scope, receive, send)
        refusal = JSONResponse(
            {"detail": "this server needs its access token: send `Authorization: Bearer TOKEN`"},
            status_code=401,
            headers={"WWW-Authenticate": 'Basic realm="simtune", charset="UTF-8"'},
        )
        await refusal(scope, receive, send)

    def _presented(self, scope: Scope) -> bool:
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, credentials = header.partition(b" ")
        if scheme.lower() == b"bearer":
            return hmac.compare_digest(credentials.strip(), self.token)
        if scheme.lower() == b"basic":
            try:
                _, _, password = base64.b64decode(credentials.strip(), validate=True).partition(b":")
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(password, self.token)
        return False
