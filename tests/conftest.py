"""Fixtures: a fresh database per test (SQLite in memory by default; with
DATABASE_URL, a fresh PostgreSQL database beside the one named), a frozen
clock, the ASGI app on an in-process transport, and organizations with
one token per role."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from redis.asyncio import Redis
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionContext, SqliteTransactionWrapper
from tortoise.context import TortoiseContext, tortoise_test_context

from app import db as app_db
from app import ids
from app.accounts import service as accounts
from app.accounts.actor import Actor
from app.accounts.models import Role, User
from app.clock import FrozenClock
from app.config import Settings
from app.db import MODEL_MODULES
from app.redis import connected
from app.sqlite_immediate import ReleasingTransactionContext
from app.web import create_app
from tasks.queue import QUEUE
from tests.loopback import serving

DATABASE_URL = os.environ.get("DATABASE_URL", "")
ON_POSTGRES = DATABASE_URL.startswith(("postgres://", "postgresql://"))


def _own_redis_database() -> None:
    """Under pytest-xdist, each worker process uses a database of its own on REDIS_URL's
    server (worker gwN: the URL's database + N), so its arq queue, keys and live channels
    are its own; the processes a test starts inherit it."""
    url, worker = os.environ.get("REDIS_URL"), os.environ.get("PYTEST_XDIST_WORKER")
    if url and worker:
        parts = urlsplit(url)
        database = int(parts.path.lstrip("/") or 0) + int(worker.removeprefix("gw"))
        os.environ["REDIS_URL"] = urlunsplit(parts._replace(path=f"/{database}"))


_own_redis_database()


def _postgres_url(database: str) -> str:
    url = urlsplit(DATABASE_URL)
    return urlunsplit(("postgres", url.netloc, "/" + database, url.query, ""))


async def _on_server(statement: str) -> None:
    conn = await asyncpg.connect(_postgres_url(urlsplit(DATABASE_URL).path.lstrip("/") or "postgres"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_database(*, file: Path | None = None) -> AsyncIterator[str]:
    """The URL of a new database, dropped afterwards: on PostgreSQL (with
    DATABASE_URL) a database of its own, created here when ``file`` is given
    (else by Tortoise); otherwise SQLite in ``file``, or in memory."""
    if not ON_POSTGRES:
        yield f"sqlite://{file}" if file else "sqlite://:memory:"
        return
    name = f"test_leadline_{uuid.uuid4().hex[:16]}"
    if file is not None:
        await _on_server(f'CREATE DATABASE "{name}"')
    try:
        yield _postgres_url(name)
    finally:
        await _on_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ON_POSTGRES:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: runs in CI's DATABASE_URL pass")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def _releasing_transaction(client: SqliteClient) -> SqliteTransactionContext:
    return ReleasingTransactionContext(SqliteTransactionWrapper(client), client._lock)


# The tests' SQLite databases are Tortoise's own client (tortoise_test_context takes a
# URL, not an engine): their transactions give back the connection's lock when BEGIN
# fails or is cancelled, as Leadline's client does (app/sqlite_immediate.py).
SqliteClient._in_transaction = _releasing_transaction  # type: ignore[method-assign]


@pytest.fixture
async def db() -> AsyncIterator[None]:
    async with fresh_database() as url, tortoise_test_context(MODEL_MODULES, db_url=url):
        yield


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[str]:
    """A database made by the migrations (as in production, where the tests' ``db``
    is made from the models), connected; its URL, for worker processes."""
    async with fresh_database(file=tmp_path / "migrated.sqlite3") as url:
        await app_db.migrate(Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": url}))
        async with TortoiseContext() as context:
            await context.init(config=app_db.tortoise_config(url))
            yield url


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[Redis]:
    """The test's Redis: REDIS_URL's, or an embedded one in its data directory."""
    server = {"REDIS_URL": os.environ["REDIS_URL"]} if os.environ.get("REDIS_URL") else {}
    async with connected(Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "data"), **server})) as client:
        yield client


async def send_job_ids(redis: Redis, pattern: str = "*") -> list[str]:
    """The ids (``send:<pattern>``) of the send jobs Redis holds, waiting or in progress."""
    keys = redis.scan_iter(match=f"{job_key_prefix}send:{pattern}")
    return sorted([key.decode().removeprefix(job_key_prefix) async for key in keys])


async def remove_jobs(redis: Redis, job_ids: list[str]) -> None:
    """Takes jobs off the worker's queue with all arq keeps of them (the job, its
    in-progress mark, its try count): on a shared REDIS_URL, a job left behind (one a
    killed worker held comes back after 130 s) would run in a later test's worker."""
    if job_ids:
        await redis.zrem(QUEUE, *job_ids)
        prefixes = (job_key_prefix, in_progress_key_prefix, retry_key_prefix)
        await redis.delete(*[prefix + job_id for job_id in job_ids for prefix in prefixes])


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "data")})


@pytest.fixture
async def client(db: None, settings: Settings, clock: FrozenClock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, clock=clock, manage_resources=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://leadline.test") as c:
        yield c


@dataclass
class Org:
    id: int
    gid: str
    tokens: dict[Role, str]
    users: dict[Role, User]

    def actor(self, role: Role, clock: FrozenClock) -> Actor:
        return Actor(organization_id=self.id, user_id=self.users[role].id, role=role, clock=clock)

    def user_gid(self, role: Role) -> str:
        return ids.encode("User", self.users[role].id)


async def make_org(name: str, clock: FrozenClock) -> Org:
    created = await accounts.create_organization(
        name=name, admin_email=f"admin@{name.lower()}.example", admin_name="Admin", clock=clock
    )
    admin = Actor(organization_id=created.organization.id, user_id=created.admin.id, role=Role.ADMIN, clock=clock)
    tokens = {Role.ADMIN: created.token}
    users = {Role.ADMIN: created.admin}
    for role in (Role.MANAGER, Role.AGENT):
        user = await accounts.create_user(
            actor=admin, name=role.value.title(), email=f"{role.value.lower()}@{name.lower()}.example", role=role
        )
        token, _ = await accounts.create_token(actor=admin, name=role.value, user_id=user.id)
        tokens[role], users[role] = token, user
    return Org(created.organization.id, ids.encode("Organization", created.organization.id), tokens, users)


@pytest.fixture
async def org(db: None, clock: FrozenClock) -> Org:
    return await make_org("Acme", clock)


@pytest.fixture
async def other_org(db: None, clock: FrozenClock) -> Org:
    return await make_org("Globex", clock)


class GraphQL:
    """Posts GraphQL documents as a given token; returns the decoded JSON."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def __call__(self, token: str, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def gql(client: httpx.AsyncClient) -> GraphQL:
    return GraphQL(client)


class QueryCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


@pytest.fixture
def sql_queries() -> Iterator[QueryCounter]:
    """Counts the SQL statements Tortoise sends while the test runs."""
    logger = logging.getLogger("tortoise.db_client")
    counter = QueryCounter()
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(counter)
    yield counter
    logger.removeHandler(counter)
    logger.setLevel(level)


@lru_cache(maxsize=1)
def _mutation_fields() -> dict[str, Any]:
    from schema.build import build_schema

    mutation_type = build_schema()._schema.mutation_type
    assert mutation_type is not None
    return dict(mutation_type.fields)


async def mutate(gql: GraphQL, token: str, name: str, payload: str, /, **input_: Any) -> dict[str, Any]:
    """Runs mutation ``name`` with ``input`` and returns its payload (``payload`` is
    the selection besides errors)."""
    input_type = _mutation_fields()[name].args["input"].type
    body = await gql(
        token,
        f"mutation($input: {input_type}) {{ {name}(input: $input) {{ {payload} errors {{ code message field }} }} }}",
        input=input_,
    )
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"][name]
    return result


@pytest.fixture
async def live_server(db: None, settings: Settings, clock: FrozenClock) -> AsyncIterator[str]:
    """The app served by uvicorn on a loopback port, in this test's event loop
    (so it shares the test's database context)."""
    async with serving(create_app(settings, clock=clock, manage_resources=False)) as url:
        yield url


@contextmanager
def tasks_made() -> Iterator[list[int]]:
    """Counts the asyncio tasks made meanwhile (one element: the count)."""
    loop = asyncio.get_running_loop()
    made = [0]
    previous = loop.get_task_factory()

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        made[0] += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)
    try:
        yield made
    finally:
        loop.set_task_factory(previous)
