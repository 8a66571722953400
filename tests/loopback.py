"""Serving an ASGI app with uvicorn on a loopback port, in the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp


@asynccontextmanager
async def serving(app: ASGIApp, **options: Any) -> AsyncIterator[str]:
    """The app's base URL while it is served (``options``: uvicorn's, over these)."""
    defaults = {"host": "127.0.0.1", "port": 0, "lifespan": "off", "log_level": "warning", "ws": "websockets-sansio"}
    server = uvicorn.Server(uvicorn.Config(app, **{**defaults, **options}))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
