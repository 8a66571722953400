"""The worker's metrics endpoint: a small HTTP server on the worker's event loop
(WORKER_METRICS_PORT), answering ``GET /metrics`` with the worker's metrics and
the backlog gauges, which it reads from the database at scrape time
(app.observability.backlog). It runs on the loop, not in a thread, so that those
reads are ordinary awaited queries; every read of a request is bounded in time
and size, so a slow or hostile client holds nothing but its own connection.
The same rule as the API's /metrics guards it (``access``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import CollectorRegistry, generate_latest

from app.config import Settings
from app.observability import metrics
from app.observability.access import Verdict, verdict
from app.observability.backlog import BacklogGauges

REQUEST_SECONDS = 5.0
MAX_HEAD_BYTES = 8192
logger = logging.getLogger("leadline.metrics")


class WorkerEndpoint:
    def __init__(self, settings: Settings, gauges: BacklogGauges) -> None:
        self.settings = settings
        self.gauges = gauges
        self.registry = CollectorRegistry()
        self.registry.register(gauges)
        self.server: asyncio.Server | None = None

    async def start(self, port: int) -> None:
        """Listens on HOST:``port`` (0: any free port, as ``port`` then says)."""
        self.server = await asyncio.start_server(self._serve, self.settings.host, port, limit=MAX_HEAD_BYTES)
        logger.info("worker metrics on http://%s:%d/metrics", self.settings.host, self.port)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
            self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
                status, body, content_type = await self._answer(head.decode("latin-1"))
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a client that sends too little, too much or too slowly gets nothing
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, head: str) -> tuple[str, bytes, str]:
        request_line, *header_lines = head.split("\r\n")
        method, _, rest = request_line.partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        if path != "/metrics":
            return "404 Not Found", b"not found\n", "text/plain"
        if method != "GET":
            return "405 Method Not Allowed", b"GET /metrics\n", "text/plain"
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        allowed = verdict(self.settings, headers.get("authorization"))
        if allowed is not Verdict.ALLOWED:
            return allowed.status_line, allowed.message.encode() + b"\n", "text/plain"
        await self.gauges.refresh()
        return "200 OK", metrics.render_worker() + generate_latest(self.registry), metrics.CONTENT_TYPE
