"""GraphiQL as Leadline serves it in development (app/graphiql.html): Strawberry's
page with Leadline's example operations, the Headers tab open on where the token
goes, and a fetcher that streams subscriptions over HTTP (multipart) and turns a
401 into that hint. Its scripts and styles load from unpkg.com, as Strawberry's do."""

from __future__ import annotations

import functools
from pathlib import Path

PAGE = Path(__file__).with_name("graphiql.html")


@functools.cache
def page() -> str:
    return PAGE.read_text(encoding="utf-8")
