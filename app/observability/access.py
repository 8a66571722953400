"""Who may read the metrics, on the API's /metrics and the worker's port alike.

- METRICS_TOKEN set: ``Authorization: Bearer <METRICS_TOKEN>`` (Prometheus's
  ``authorization`` scrape setting), compared in constant time.
- Else METRICS_PUBLIC=1: anyone who reaches the port (a private network, a
  scraper beside the process).
- Else: open in development, refused in production (403 naming both settings).

Metrics hold no personal data (operation names, channels, states, counts), but
they tell traffic and backlog, which a serious deployment keeps to its operators.
"""

from __future__ import annotations

import hmac
from enum import Enum

from app.config import Settings


class Verdict(Enum):
    ALLOWED = ("200 OK", "")
    UNAUTHENTICATED = ("401 Unauthorized", "Metrics need Authorization: Bearer <METRICS_TOKEN>.")
    CLOSED = (
        "403 Forbidden",
        "Metrics are off in production until METRICS_TOKEN (a bearer token) or METRICS_PUBLIC=1 is set.",
    )

    @property
    def status_line(self) -> str:
        return self.value[0]

    @property
    def status(self) -> int:
        return int(self.value[0].split()[0])

    @property
    def message(self) -> str:
        return self.value[1]


def verdict(settings: Settings, authorization: str | None) -> Verdict:
    if settings.metrics_token is not None:
        scheme, _, token = (authorization or "").strip().partition(" ")
        given = token.strip().encode() if scheme.lower() == "bearer" else b""
        return (
            Verdict.ALLOWED if hmac.compare_digest(given, settings.metrics_token.encode()) else Verdict.UNAUTHENTICATED
        )
    if settings.metrics_public or settings.development:
        return Verdict.ALLOWED
    return Verdict.CLOSED
