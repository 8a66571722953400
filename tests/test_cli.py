"""The `leadline` command, run as a process against a database of its own."""

from __future__ import annotations

import asyncio
import csv
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import fresh_database
from tests.live_processes import LEADLINE, killed_on_exit


class Cli:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    async def __call__(self, *args: str, ok: bool = True) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            LEADLINE, *args, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        async with killed_on_exit(process), asyncio.timeout(300):  # a command that hangs is not left running
            out, err = await process.communicate()
        code = process.returncode
        assert code is not None
        if ok:
            assert code == 0, err.decode()
        return code, out.decode(), err.decode()


@pytest.fixture
async def cli(tmp_path: Path) -> AsyncIterator[Cli]:
    async with fresh_database(file=tmp_path / "cli.sqlite3") as url:
        env = {**os.environ, "LEADLINE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": url}
        run = Cli(env)
        await run("migrate")
        yield run


async def test_org_create_prints_one_json_object(cli: Cli) -> None:
    _, out, _ = await cli("org", "create", "Initech", "--admin-email", "Bill@Initech.example", "--admin-name", "Bill")
    created = json.loads(out)
    assert set(created) == {"organization_id", "user_id", "token"}
    assert created["token"].startswith("ll_")
    code, _, err = await cli("org", "create", "X", "--admin-email", "nope", ok=False)
    assert code != 0 and "Not a valid email address." in err


async def test_presets_list_and_apply_twice(cli: Cli) -> None:
    _, listing, _ = await cli("preset", "list")
    assert listing.startswith("lead-workflow\t")
    org = json.loads((await cli("org", "create", "Initech", "--admin-email", "bill@initech.example"))[1])[
        "organization_id"
    ]
    _, first, _ = await cli("preset", "apply", "lead-workflow", "--org", org)
    _, second, _ = await cli("preset", "apply", "lead-workflow", "--org", org)
    assert first == second == "applied lead-workflow: workflows New, Attempting Contact, Contacted, Closed\n"
    code, _, err = await cli("preset", "apply", "nope", "--org", org, ok=False)
    assert code != 0 and "Unknown preset 'nope'" in err
    code, _, err = await cli("preset", "apply", "lead-workflow", "--org", "T3JnYW5pemF0aW9uOjk5", ok=False)
    assert code != 0 and "No organization" in err


async def test_schema_prints_the_committed_sdl(cli: Cli) -> None:
    _, out, _ = await cli("schema")
    assert out == (Path(__file__).parent.parent / "schema" / "schema.graphql").read_text()


async def test_assign_distributes_the_unassigned_round_robin_with_a_progress_bar(cli: Cli, tmp_path: Path) -> None:
    from tortoise.context import TortoiseContext

    from app import db as app_db
    from app import ids
    from app.accounts import service as accounts
    from app.accounts.actor import system_actor
    from app.accounts.models import Role
    from app.clock import SystemClock
    from app.prospects.models import Prospect

    org = json.loads((await cli("org", "create", "Initech", "--admin-email", "bill@initech.example"))[1])[
        "organization_id"
    ]
    await cli("preset", "apply", "lead-workflow", "--org", org)
    path = tmp_path / "leads.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["first_name", "status"])
        writer.writerows([f"Lead {n}", "Sold" if n % 6 == 0 else "New Lead"] for n in range(1200))
    await cli("import", str(path), "--org", org)
    async with TortoiseContext() as context:
        await context.init(config=app_db.tortoise_config(cli.env["DATABASE_URL"]))
        admin = system_actor(ids.decode_as("Organization", org) or 0, SystemClock())
        agents = [
            await accounts.create_user(actor=admin, name=f"A{n}", email=f"a{n}@initech.example", role=Role.AGENT)
            for n in range(3)
        ]

        _, out, err = await cli("assign", "--org", org, "--status", "New Lead")
        assert json.loads(out) == {"assigned": 1000}
        assert "assigning" in err  # the progress bar
        owners = sorted([await Prospect.filter(owner_id=agent.id).count() for agent in agents], reverse=True)
        assert owners == [334, 333, 333]
        _, out, _ = await cli("assign", "--org", org, "--user", str(agents[0].id))
        assert json.loads(out) == {"assigned": 200}  # the Sold ones, all to one agent
        assert await Prospect.filter(owner_id=None).count() == 0
    code, _, err = await cli("assign", "--org", org, "--status", "Nope", ok=False)
    assert code != 0 and "Status 'Nope' not found." in err
