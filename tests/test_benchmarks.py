"""The engine benchmark runs end to end (its figures are not checked: benchmarks are not timed tests)."""

from __future__ import annotations

import asyncio
import re
import sys


async def test_engine_benchmark_prints_its_figures() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.benchmarks.engine",
        "40",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(120):
        output = (await process.communicate())[0].decode()
    assert process.returncode == 0, output
    assert re.search(r"^engine: 40 email steps in a (SQLite|PostgreSQL) database, 1 worker", output, re.M), output
    assert re.search(r"^  engine +\d+ steps/s", output, re.M), output
    bare = re.search(
        r"^  bare loop +\d+ messages/s \(the median of 4 runs, .*: (\d+), (\d+), (\d+), (\d+)\)", output, re.M
    )
    assert bare and all(int(rate) > 0 for rate in bare.groups()), output
    assert len(re.findall(r"^  CPU +µs a message: client \d+, sink \d+", output, re.M)) == 4, output
    assert re.search(r"^  ratio +\d+\.\d\d \(\d+\.\d\d counting the activation\)", output, re.M), output


async def test_api_benchmark_prints_its_figures() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.benchmarks.api",
        # Two serve workers: `leadline serve --workers` (uvicorn's supervisor) serves too.
        *("--prospects", "60", "--clients", "1,3", "--seconds", "1.5", "--warmup", "0.2", "--workers", "2"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(120):
        output = (await process.communicate())[0].decode()
    assert process.returncode == 0, output
    assert re.search(
        r"^api: 60 prospects in one organization, (SQLite|PostgreSQL), .*serve with 2 worker process", output, re.M
    ), output
    for clients in (1, 3):
        level = re.search(
            rf"^ +{clients} clients +(\d+\.\d) requests/s +server CPU +\d+\.\d ms/request .* errors 0$", output, re.M
        )
        assert level and float(level.group(1)) > 0, output
    assert len(re.findall(r"^ +all +\d+\.\d/s +p50 +\d+\.\d ms +p99 +\d+\.\d ms$", output, re.M)) == 2, output
    for operation in ("viewer", "page", "setProspectStatus", "updateProspect"):  # each in one level at least
        assert re.search(rf"^ +{operation} +\d+\.\d/s +p50 +\d+\.\d ms +p99 +\d+\.\d ms$", output, re.M), output


async def test_sender_benchmark_prints_each_parts_cost_both_ways() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.benchmarks.sender",
        "20",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(120):
        output = (await process.communicate())[0].decode()
    assert process.returncode == 0, output
    for part in ("scheduler", "sender"):
        for how in ("from emailFrom", "through a mailbox"):
            assert re.search(rf"^  {part} +{how} +median +\d+\.\d", output, re.M), output
        assert re.search(rf"^  {part} +the mailbox's cost +[-+]\d+\.\d µs a message", output, re.M), output
