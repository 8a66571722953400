"""Leadline as separate processes for tests: a worker and API servers sharing one
database and one Redis (the embedded one of the data directory, or REDIS_URL)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import httpx
from redis.asyncio import Redis

from app.config import Settings
from app.redis import connected, locate

LEADLINE = str(Path(sys.executable).with_name("leadline"))


async def stop(process: asyncio.subprocess.Process, sig: int = signal.SIGTERM, seconds: float = 30) -> bytes:
    """Stops a child with ``sig`` and waits for it to exit; its stderr, if piped. One
    still running after ``seconds`` is killed and the test fails: a process left
    behind would take later tests' jobs from a shared Redis and slow the machine."""
    if process.returncode is None:
        process.send_signal(sig)
    try:
        async with asyncio.timeout(seconds):
            _, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"process {process.pid} did not stop within {seconds} s of signal {sig}; killed") from None
    return stderr or b""


async def stop_all(
    processes: list[asyncio.subprocess.Process], sig: int = signal.SIGTERM, seconds: float = 30
) -> list[bytes]:
    """``stop`` for each, together: one that hangs (killed, failing the test) leaves none of the others running."""
    outcomes = await asyncio.gather(*(stop(process, sig, seconds) for process in processes), return_exceptions=True)
    stderrs: list[bytes] = []
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        stderrs.append(outcome)
    return stderrs


@asynccontextmanager
async def killed_on_exit(process: asyncio.subprocess.Process) -> AsyncIterator[asyncio.subprocess.Process]:
    """The process, killed on the way out if it is still running (a test failed
    before stopping it)."""
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Processes:
    env: dict[str, str]
    apis: list[str] = field(default_factory=list)
    """Base URLs of the API servers."""
    children: list[asyncio.subprocess.Process] = field(default_factory=list)
    logs: Path | None = None
    """A directory for the children's stderr, a file each (`worker-1.log`): a child that
    logs much (its database away) must not fill a pipe read only when it stops. None: piped."""

    def ws(self, index: int) -> str:
        return self.apis[index].replace("http://", "ws://") + "/graphql"

    async def graphql(self, index: int, token: str, query: str, **variables: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.apis[index], timeout=30) as client:
            response = await client.post(
                "/graphql", json={"query": query, "variables": variables}, headers={"Authorization": f"Bearer {token}"}
            )
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]

    @asynccontextmanager
    async def redis(self) -> AsyncIterator[Redis]:
        """A client of the processes' Redis (call it while they run)."""
        async with connected(Settings.from_env(self.env)) as client:
            yield client

    async def start(self, *args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
        if self.logs is None:
            stderr: int | BinaryIO = asyncio.subprocess.PIPE
        else:
            stderr = (self.logs / f"{args[0]}-{len(self.children) + 1}.log").open("wb")
        try:
            child = await asyncio.create_subprocess_exec(
                LEADLINE, *args, env=env or self.env, stdout=asyncio.subprocess.DEVNULL, stderr=stderr
            )
        finally:
            if not isinstance(stderr, int):
                stderr.close()  # the child has its own descriptor
        self.children.append(child)
        return child

    async def serve(self) -> str:
        port = free_port()
        child = await self.start("serve", env=self.env | {"HOST": "127.0.0.1", "PORT": str(port)})
        base = f"http://127.0.0.1:{port}"

        async def exited() -> str:
            stderr = (await child.communicate())[1] or b""
            return f"{stderr.decode()[-2000:]} (logs: {self.logs})"

        await until_ready(base, child, exited, seconds=30)
        self.apis.append(base)
        return base


@asynccontextmanager
async def processes(
    database: str, data_dir: Path, *, apis: int, worker: bool = True, logs: Path | None = None
) -> AsyncIterator[Processes]:
    """``apis`` API servers (and a worker) on ``database``; all stopped with SIGTERM after.
    ``logs``: a directory for their stderr (``Processes.logs``). Without it stderr is piped and
    read only when they stop: about 192 KiB (the pipe's 64 KiB and asyncio's 128 KiB before it
    stops reading) fill after ~2,280 websocket connections (uvicorn logs 86 bytes for each),
    and the API then blocks in its log write. Pass it when a process may log that much."""
    env = {**os.environ, "LEADLINE_DATA_DIR": str(data_dir), "DATABASE_URL": database, "SCHEDULER_INTERVAL": "0.2"}
    running = Processes(env=env, logs=logs)
    try:
        for _ in range(apis):
            await running.serve()  # the first one starts the embedded Redis; the others find it
        if worker:
            await running.start("worker")
        yield running
    finally:
        stopped = await stop_all(running.children)
        for child, stderr in zip(running.children, stopped, strict=True):
            # uvicorn re-raises SIGTERM once it has shut down cleanly
            assert child.returncode in (0, -signal.SIGTERM), f"exit {child.returncode}: {stderr.decode()[-3000:]}"
        if "REDIS_URL" not in env:
            # Processes stopping together each see the others still connected, so none
            # stops the embedded server: stop it now that it has no client left.
            locate(Settings.from_env(env)).close()


async def until_ready(
    base: str, child: asyncio.subprocess.Process, exited: Callable[[], Awaitable[str]], *, seconds: float
) -> None:
    """Waits until the `serve` at ``base`` answers /readyz; AssertionError with what
    ``exited`` tells when the process stopped first, or when ``seconds`` passed."""
    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(int(seconds * 10)):
            if child.returncode is not None:
                raise AssertionError(f"serve exited: {await exited()}")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("serve never became ready")
