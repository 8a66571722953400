"""A real HTTP server on loopback standing in for Twilio's Messages API."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.loopback import serving


@dataclass
class Twilio:
    messages: list[dict[str, str]] = field(default_factory=list)
    credentials: list[str] = field(default_factory=list)

    async def create(self, request: Request) -> JSONResponse:
        form = await request.form()
        self.messages.append({k: str(v) for k, v in form.items()})
        self.credentials.append(base64.b64decode(request.headers["authorization"].split()[1]).decode())
        sid = f"SM{len(self.messages):032d}"
        return JSONResponse(
            {"sid": sid, "status": "queued", "account_sid": request.path_params["sid"]}, status_code=201
        )


@asynccontextmanager
async def twilio_standin() -> AsyncIterator[tuple[Twilio, str]]:
    """(the stand-in, its base URL for TWILIO_API_URL)."""
    twilio = Twilio()
    app = Starlette(routes=[Route("/2010-04-01/Accounts/{sid}/Messages.json", twilio.create, methods=["POST"])])
    async with serving(app) as url:
        yield twilio, url
