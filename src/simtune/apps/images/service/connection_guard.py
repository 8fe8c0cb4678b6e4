"""uvicorn's HTTP/1.1 protocol with two limits uvicorn has no option for: a deadline for a connection's
first request head, and a cap on the connections one client address holds at once.

Both use only asyncio's public ``Protocol`` methods (``connection_made``, ``data_received``,
``connection_lost``), each handing on to uvicorn's own, so nothing depends on uvicorn's internals. The
rest comes from uvicorn's options (see ``server_config``): idle keep-alive connections close after
``timeout_keep_alive``, request heads are capped in size, the whole server in connections. A request
body must arrive within ``BodyLimit``'s deadline. What this cannot see (a client trickling the head of a
second request on a kept-alive connection) is a reverse proxy's job in production: nginx's
``client_header_timeout``, ``client_body_timeout`` and ``limit_conn``, in docs/serving.md.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_TIMEOUT_S = 10.0
MAX_HEAD_BYTES = 16 * 1024
_END_OF_HEAD = b"\r\n\r\n"


class GuardedH11Protocol(H11Protocol):
    """Closes a connection whose first request head has not fully arrived ``head_timeout_s`` after it opened,
    and answers 503 to a client address that already holds ``max_per_client`` connections (0: no cap).
    Both refusals, and uvicorn's 400 for a malformed or oversized request head, answer ``{"detail": reason}``."""

    head_timeout_s = HEAD_TIMEOUT_S
    max_per_client = 0
    _open_per_client: Counter[str] = Counter()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._guarded = transport
        self._tail = b""
        peer = transport.get_extra_info("peername")
        self._client = peer[0] if isinstance(peer, tuple) else None
        self._deadline: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            self.head_timeout_s, self._expire
        )
        super().connection_made(transport)
        if self._client is None:
            return
        self._open_per_client[self._client] += 1
        if self.max_per_client and self._open_per_client[self._client] > self.max_per_client:
            self._refuse(
                "503 Service Unavailable",
                f"this client already holds {self.max_per_client} connections; close some and retry",
            )

    def data_received(self, data: bytes) -> None:
        if self._deadline is not None:
            seen = self._tail + data
            if _END_OF_HEAD in seen:
                self._disarm()
            else:
                self._tail = seen[-len(_END_OF_HEAD) + 1 :]
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._client is not None:
            self._open_per_client[self._client] -= 1
            if self._open_per_client[self._client] <= 0:
                del self._open_per_client[self._client]
            self._client = None
        super().connection_lost(exc)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self._guarded.is_closing():
            self._guarded.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request head it cannot parse (plain text there); the connection closes after it."""
        self._refuse(
            "400 Bad Request",
            f"{msg.rstrip('.')}: the request head is malformed or over {MAX_HEAD_BYTES // 1024} KiB",
        )

    def _refuse(self, status: str, reason: str) -> None:
        body = json.dumps({"detail": reason}).encode()
        self._guarded.write(
            f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n".encode()
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        self._guarded.close()


def server_config(app: Any, max_connections: int, max_per_client: int, **options: Any) -> Any:
    """The uvicorn configuration ``simtune images serve`` runs ``app`` with (the benchmarks too)."""
    import uvicorn

    protocol = type("GuardedH11", (GuardedH11Protocol,), {"max_per_client": max_per_client})
    return uvicorn.Config(
        app,
        http=protocol,
        log_level="warning",
        timeout_keep_alive=5,
        limit_concurrency=max_connections,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        **options,
    )
