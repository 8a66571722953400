"""Log lines: Python's text format by default, or with LOG_FORMAT=json one JSON
object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message`` and,
while a GraphQL operation runs (and on its request's access line), ``operation``.

A JSON line carries no personal data: an exception is its type and code
locations, never its message (a database error quotes the row); addresses and
phone numbers in a message are redacted; the access line is the method, the
path without its query and with an unsubscribe token redacted, and the status,
never the client's address.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

TEXT = "text"
JSON = "json"
FORMATS = (TEXT, JSON)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

operation_name: ContextVar[str | None] = ContextVar("leadline_operation_name", default=None)
"""The name of the GraphQL operation this task runs (app.observability.graphql sets it)."""

_EMAIL = re.compile(r"[^\s'\"<>@,;:()\[\]]+@[^\s'\"<>@,;:()\[\]]+")
_PHONE = re.compile(r"\+\d[\d ().-]{6,18}\d")
_TOKEN_PATH = re.compile(r"^/u/[^/?]+")
_ACCESS_LOGGER = "uvicorn.access"


def redact(text: str) -> str:
    return _PHONE.sub("[phone]", _EMAIL.sub("[email]", text))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        if record.name == _ACCESS_LOGGER and isinstance(record.args, tuple) and len(record.args) == 5:
            _client, method, path, _version, status = record.args
            path = _TOKEN_PATH.sub("/u/[token]", str(path).partition("?")[0])
            line["message"] = f"{method} {path} {status}"
            line |= {"method": method, "path": path, "status": status}
        else:
            line["message"] = redact(record.getMessage())
        if (name := operation_name.get()) is not None:
            line["operation"] = name
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            line["exception"] = type(error).__name__
            line["at"] = _where(error)
        return json.dumps(line, ensure_ascii=False, default=str)


def _where(error: BaseException) -> list[str]:
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(f"{tb.tb_frame.f_code.co_filename.rsplit('/', 2)[-1]}:{tb.tb_lineno}")
        tb = tb.tb_next
    return frames[-8:]


def configure(log_format: str) -> None:
    """The root logger writes to stderr at INFO in ``log_format``; every handler
    already installed on the root (`leadline`'s text one) takes the format."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    root.setLevel(logging.INFO)
    formatter = JsonFormatter() if log_format == JSON else logging.Formatter(TEXT_FORMAT)
    for handler in root.handlers:
        handler.setFormatter(formatter)
