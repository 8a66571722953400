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
    assert settings.smtp_connections == 32
    key_file = tmp_path / "d" / "secret_key"
    assert key_file.read_text().strip() == settings.secret_key and len(settings.secret_key) >= 48
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "d")}).secret_key == settings.secret_key


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
    ],
)
def test_bad_values_are_named(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path), name: value})


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
