"""Settings: read once from the environment, with the embedded defaults."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app.config import ConfigError, Settings
from app.messaging import sending
from app.messaging.transports import SmtpTransport


def test_defaults_live_in_the_data_directory(tmp_path: Path) -> None:
    settings = Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "d")})
    assert settings.database_url == f"sqlite://{tmp_path / 'd' / 'leadline.sqlite3'}"
    assert settings.redis_url is None and settings.development
    assert (settings.host, settings.port, settings.public_url) == ("127.0.0.1", 8000, "http://127.0.0.1:8000")
    assert (settings.smtp_connections, settings.max_request_bytes) == (32, 1024 * 1024)
    key_file = tmp_path / "d" / "secret_key"
    assert key_file.read_text().strip() == settings.secret_key and len(settings.secret_key) >= 48
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "d")}).secret_key == settings.secret_key


def test_request_limits_default_and_introspection_follows_the_environment(tmp_path: Path) -> None:
    development = Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path)})
    assert development.graphql_max_cost == 1_000_000
    assert (development.graphql_max_response_bytes, development.graphql_introspection) == (10 * 1024 * 1024, True)
    production = {"LEADLINE_DATA_DIR": str(tmp_path), "LEADLINE_ENV": "production", "SECRET_KEY": "k" * 40}
    assert not Settings.from_env(production).graphql_introspection
    assert Settings.from_env({**production, "GRAPHQL_INTROSPECTION": "true"}).graphql_introspection
    assert not Settings.from_env(
        {"LEADLINE_DATA_DIR": str(tmp_path), "GRAPHQL_INTROSPECTION": "no"}
    ).graphql_introspection


def test_production_requires_a_secret_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY is required"):
        Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path), "LEADLINE_ENV": "production"})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PORT", "eighty", "PORT must be an integer"),
        ("SCHEDULER_INTERVAL", "soon", "SCHEDULER_INTERVAL must be a number"),
        ("SCHEDULER_INTERVAL", "0", "SCHEDULER_INTERVAL must be positive"),
        ("SEND_LEASE_SECONDS", "-5", "SEND_LEASE_SECONDS must be positive"),
        ("SEND_LEASE_SECONDS", "nan", "SEND_LEASE_SECONDS must be positive"),
        ("WEBHOOK_TIMEOUT_SECONDS", "0", "WEBHOOK_TIMEOUT_SECONDS must be positive"),
        ("WEBHOOK_TIMEOUT_SECONDS", "61", "WEBHOOK_TIMEOUT_SECONDS must be at most 60"),
        ("LEADLINE_ENV", "staging", "LEADLINE_ENV must be development or production"),
        ("SMTP_CONNECTIONS", "many", "SMTP_CONNECTIONS must be an integer"),
        ("SMTP_CONNECTIONS", "0", "SMTP_CONNECTIONS must be between 1 and 100, not 0"),
        ("SMTP_CONNECTIONS", "101", "SMTP_CONNECTIONS must be between 1 and 100, not 101"),
        ("MAX_REQUEST_BYTES", "1mb", "MAX_REQUEST_BYTES must be an integer"),
        ("MAX_REQUEST_BYTES", "100", "MAX_REQUEST_BYTES must be between 1024 and 1073741824, not 100"),
        ("GRAPHQL_MAX_COST", "0", "GRAPHQL_MAX_COST must be between 1 and 1000000000000, not 0"),
        ("GRAPHQL_MAX_RESPONSE_BYTES", "-1", "GRAPHQL_MAX_RESPONSE_BYTES must be between 1024 and 2147483648"),
        ("TEMPLATE_MAX_CHARS", "1000", "TEMPLATE_MAX_CHARS must be between 20000 and 16777216, not 1000"),
        ("TEMPLATE_RENDER_SECONDS", "0", "TEMPLATE_RENDER_SECONDS must be positive"),
        ("INBOUND_EMAIL_READ_SECONDS", "0", "INBOUND_EMAIL_READ_SECONDS must be positive"),
        ("INBOUND_EMAIL_READ_SECONDS", "61", "INBOUND_EMAIL_READ_SECONDS must be at most 60"),
        ("WORKER_METRICS_PORT", "http", "WORKER_METRICS_PORT must be an integer"),
        ("WORKER_METRICS_PORT", "65536", "WORKER_METRICS_PORT must be between 1 and 65535, not 65536"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be text or json, not 'xml'"),
        ("PROMETHEUS_MULTIPROC_DIR", "/nonexistent/metrics", "PROMETHEUS_MULTIPROC_DIR must be an existing directory"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path), name: value})


def test_metrics_and_logs_are_off_and_text_by_default_and_read_when_set(tmp_path: Path) -> None:
    default = Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path)})
    assert (default.worker_metrics_port, default.metrics_token, default.metrics_public) == (None, None, False)
    assert (default.prometheus_multiproc_dir, default.log_format) == (None, "text")
    settings = Settings.from_env(
        {
            "LEADLINE_DATA_DIR": str(tmp_path),
            "WORKER_METRICS_PORT": "9101",
            "METRICS_TOKEN": " scrape ",
            "METRICS_PUBLIC": "yes",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
            "LOG_FORMAT": "JSON",
        }
    )
    assert (settings.worker_metrics_port, settings.metrics_token, settings.metrics_public) == (9101, "scrape", True)
    assert (settings.prometheus_multiproc_dir, settings.log_format) == (tmp_path, "json")


def test_servers_are_named_by_url(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "LEADLINE_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "postgresql://u@db:5432/leads",
            "REDIS_URL": "redis://cache:6379/0",
            "PUBLIC_URL": "https://leads.example/",
            "SCHEDULER_INTERVAL": "0.25",
        }
    )
    assert settings.database_url == "postgres://u@db:5432/leads"
    assert (settings.redis_url, settings.public_url, settings.scheduler_interval) == (
        "redis://cache:6379/0",
        "https://leads.example",
        0.25,
    )


def test_the_smtp_pool_has_the_configured_connections(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"LEADLINE_DATA_DIR": str(tmp_path), "SMTP_URL": "smtp://mail.example:25", "SMTP_CONNECTIONS": "4"}
    )
    transport = sending.transports_for(settings).email
    assert isinstance(transport, SmtpTransport) and transport.connections == 4


async def test_the_template_limits_hold_for_every_render_of_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every composition root sets them from its settings: the CLI, and create_app
    and create_worker however they are started."""
    from app import cli
    from app.errors import InvalidInput
    from app.redis import RedisLocation
    from app.sequences import templates
    from app.web import create_app
    from tasks.worker import create_worker

    assert Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path)}).template_max_chars == 262_144
    monkeypatch.setenv("LEADLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TEMPLATE_MAX_CHARS", "30000")
    monkeypatch.setenv("TEMPLATE_RENDER_SECONDS", "0.25")
    monkeypatch.setattr(templates, "_limits", templates.Limits())
    settings = cli._settings()
    assert (settings.template_max_chars, settings.template_render_seconds) == (30_000, 0.25)
    assert templates._limits == templates.Limits(30_000, 0.25)
    small = Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path), "TEMPLATE_MAX_CHARS": "20000"})
    for start in (
        lambda: create_app(small, manage_resources=False),
        lambda: create_worker(small, RedisLocation("redis://127.0.0.1:1"), own_database=False, handle_signals=False),
    ):
        monkeypatch.setattr(templates, "_limits", templates.Limits())
        start()
        with pytest.raises(InvalidInput, match="more than 20,000 characters"):
            templates.check("{{ 'x' * 30000 }}", ["body"])
