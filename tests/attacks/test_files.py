"""Files: the data directory is its owner's alone. After a real start
under a umask of 022 (settings, migrations, the database in use, the embedded
Redis, the file outbox written), its directories are 0700 and its files 0600."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest

from app import db
from app.accounts import service as accounts
from app.clock import FrozenClock
from app.config import Settings
from app.messaging import sending
from app.messaging.transports import Email
from app.redis import connected
from tests.live_processes import LEADLINE

ROOT = Path(__file__).parents[2]

PATHS = [
    pytest.param(".", 0o700, id="data-directory"),
    pytest.param("secret_key", 0o600, id="generated-secret-key"),
    pytest.param("leadline.sqlite3", 0o600, id="database"),
    pytest.param("leadline.sqlite3-wal", 0o600, id="database-wal"),
    pytest.param("leadline.sqlite3-shm", 0o600, id="database-shm"),
    pytest.param("outbox", 0o700, id="outbox-directory"),
    pytest.param("outbox/*.eml", 0o600, id="outbox-email"),
    pytest.param("outbox/sms-*.json", 0o600, id="outbox-sms"),
    pytest.param("redis", 0o700, id="embedded-redis-directory"),
    pytest.param("redis/server.lock", 0o600, id="embedded-redis-lock"),
    pytest.param("redis/*.settings", 0o600, id="embedded-redis-registry"),
]
"""A path in the data directory (a glob), and its mode after the start."""


async def _start(data: Path) -> dict[str, int]:
    """Starts what a fresh install starts and, while it runs, reads the mode of
    everything in the data directory: {path relative to it: mode}."""
    settings = Settings.from_env({"LEADLINE_DATA_DIR": str(data)})
    await db.migrate(settings)
    await db.init(settings)
    try:
        async with connected(settings) as redis:
            await redis.ping()
            # A write, so SQLite has its -wal and -shm files open.
            await accounts.create_organization(
                name="Acme", admin_email="admin@acme.example", admin_name="Admin", clock=FrozenClock()
            )
            transports = sending.transports_for(settings)
            await transports.email.send(
                Email(
                    sender="a@acme.example", recipient="b@b.example", data=b"Subject: hi\r\n\r\nhi", message_id="<m@a>"
                )
            )
            await transports.sms.send(to="+15555550100", sender="+15555550101", body="hi", reference=1)
            await transports.close()
            return _modes(data)
    finally:
        await db.close()


def _modes(data: Path) -> dict[str, int]:
    return {str(path.relative_to(data)): stat.S_IMODE(path.lstat().st_mode) for path in [data, *data.rglob("*")]}


def _private_env(data: Path) -> dict[str, str]:
    """The environment of a start on the data directory alone: its SQLite
    database and embedded Redis, whatever the test run uses."""
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    return environ | {"LEADLINE_DATA_DIR": str(data)}


@pytest.fixture(scope="module")
def modes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """The start runs in a process of its own, under a umask of 022 (and with its
    own ORM: one bound to SQLite here would stay bound for later tests)."""
    data = tmp_path_factory.mktemp("files") / "data"
    code = (
        "import asyncio, json, os, sys; from pathlib import Path; os.umask(0o022); "
        "from tests.attacks.test_files import _start; print(json.dumps(asyncio.run(_start(Path(sys.argv[1])))))"
    )
    started = subprocess.run(
        [sys.executable, "-c", code, str(data)],
        cwd=ROOT,
        env=_private_env(data),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    modes: dict[str, int] = json.loads(started.stdout.splitlines()[-1])
    return modes


@pytest.mark.parametrize(("pattern", "mode"), PATHS)
def test_data_directory_modes(modes: dict[str, int], pattern: str, mode: int) -> None:
    found = {path: oct(found) for path, found in modes.items() if fnmatch(path, pattern)}
    assert found, f"nothing at {pattern}: {sorted(modes)}"
    assert set(found.values()) == {oct(mode)}, found


def test_nothing_in_the_data_directory_is_open_to_others(modes: dict[str, int]) -> None:
    assert {path: oct(mode) for path, mode in modes.items() if mode & 0o077} == {}


def test_an_install_made_before_is_tightened_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "secret_key").write_text("an old key\n")
    for name in ("leadline.sqlite3", "leadline.sqlite3-wal", "leadline.sqlite3-shm"):
        (data / name).touch(mode=0o644)
    os.chmod(data, 0o755)
    for path in data.iterdir():
        os.chmod(path, 0o644)

    migrated = subprocess.run(
        [LEADLINE, "migrate"], env=_private_env(data), capture_output=True, text=True, timeout=120, check=False
    )

    assert migrated.returncode == 0, migrated.stderr
    assert (data / "secret_key").read_text() == "an old key\n"
    assert {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in [data, *data.iterdir()]} == {
        "data": "0o700",
        "secret_key": "0o600",
        "leadline.sqlite3": "0o600",
    } | {name: "0o600" for name in ("leadline.sqlite3-wal", "leadline.sqlite3-shm") if (data / name).exists()}
