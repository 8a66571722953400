"""The API's ``GET /metrics`` (Prometheus text format; app.observability.access
says who may read it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from app.config import Settings
from app.observability import metrics
from app.observability.access import Verdict, verdict


def endpoint(settings: Settings) -> Callable[[Request], Awaitable[Response]]:
    async def serve_metrics(request: Request) -> Response:
        allowed = verdict(settings, request.headers.get("authorization"))
        if allowed is not Verdict.ALLOWED:
            headers = {"WWW-Authenticate": "Bearer"} if allowed is Verdict.UNAUTHENTICATED else None
            return PlainTextResponse(allowed.message + "\n", status_code=allowed.status, headers=headers)
        body = metrics.render_api(settings.prometheus_multiproc_dir)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    return serve_metrics


def stopped(settings: Settings) -> None:
    """The process's live gauges leave the multi-process sum (when it has one)."""
    metrics.process_stopped(settings.prometheus_multiproc_dir)
