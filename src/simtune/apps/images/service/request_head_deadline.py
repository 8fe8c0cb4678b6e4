"""uvicorn's HTTP/1.1 protocol with a deadline for each request head, so idle or trickling clients cannot
hold connections open forever (uvicorn only times out idle keep-alive connections after a response)."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_TIMEOUT_S = 10.0


class RequestHeadDeadline(H11Protocol):
    """Closes the connection when a request's line and headers have not all arrived ``HEAD_TIMEOUT_S``
    seconds after the connection opened or the previous response ended (bodies: see ``BodyLimit``)."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        waiting_for = self.cycle
        self._deadline = self.loop.call_later(HEAD_TIMEOUT_S, self._expire, waiting_for)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self, waiting_for: object) -> None:
        self._deadline = None
        if self.cycle is waiting_for and not self.transport.is_closing():  # no new request head arrived
            self.transport.close()
