"""The `leadline` command (a composition root: it starts the API and the worker)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
import uvicorn
import uvloop

from app import datadir, db, ids, presets
from app.accounts import service as accounts
from app.accounts.actor import Actor, system_actor
from app.accounts.models import Organization, User
from app.clock import SystemClock
from app.config import ConfigError, Settings
from app.errors import DomainError
from app.observability import logs
from app.prospects.models import Channel, SuppressionReason
from app.sequences import templates

T = TypeVar("T")
DEMO_ORGANIZATION = "Demo"
DEMO_PRESET = "lead-workflow"


def _settings() -> Settings:
    """The settings, whose template limits then hold for every render in this process
    (create_app and create_worker set them too, for processes that start otherwise)."""
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    templates.configure(settings)
    logs.configure(settings.log_format)
    return settings


def _run(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    """Runs ``work`` with the database connected."""

    async def main() -> T:
        await db.init(settings)
        try:
            return await work()
        finally:
            await db.close()

    try:
        return asyncio.run(main())
    except DomainError as error:
        raise click.ClickException(error.message) from None


def _pk(type_name: str, given: str) -> int | None:
    """The primary key ``given`` as a number or as the global id the API shows."""
    return int(given) if given.isdigit() else ids.decode_as(type_name, given)


async def _org_actor(org: str) -> Actor:
    pk = _pk("Organization", org)
    if pk is None or not await Organization.exists(id=pk):
        raise click.ClickException(f"No organization {org!r}.")
    return system_actor(pk, SystemClock())


@click.group()
def main() -> None:
    """Leadline: an open sales-engagement engine."""
    logging.basicConfig(level=logging.INFO, format=logs.TEXT_FORMAT)


@main.command()
def migrate() -> None:
    """Apply the database migrations."""
    settings = _settings()
    asyncio.run(db.migrate(settings))
    click.echo("migrations applied")


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's settings: websocket messages at most MAX_REQUEST_BYTES (larger
    ones close the socket, 1009), and no per-message compression, which cost
    more CPU than live events (small JSON) save in bytes. With LOG_FORMAT=json its
    own log configuration is left out, so that its lines are JSON too."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "ws": "websockets-sansio",
        "ws_per_message_deflate": False,
        "ws_max_size": settings.max_request_bytes,
    }
    if settings.log_format == logs.JSON:
        options["log_config"] = None  # uvicorn's lines go to the root logger's JSON handler
    return options


@main.command()
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    envvar="WEB_CONCURRENCY",
    show_default=True,
    help="API processes sharing the port (uvicorn's workers; env WEB_CONCURRENCY): about one per core.",
)
def serve(workers: int) -> None:
    """Run the API (GraphQL over HTTP and websockets, /healthz, /readyz, /metrics)."""
    settings = _settings()
    if workers > 1:
        # uvicorn's supervisor binds the port and starts each worker, which makes its own app.
        uvicorn.run("app.cli:worker_app", factory=True, workers=workers, lifespan="on", **uvicorn_options(settings))
        return
    uvicorn.run(worker_app(), lifespan="on", **uvicorn_options(settings))


def worker_app() -> Any:
    """The ASGI app of one `serve` process (uvicorn calls it in each of `--workers`)."""
    from app.web import create_app

    app = create_app(_settings())
    _settle_memory()
    return app


GC_THRESHOLDS = (50_000, 20, 100)
"""Python's default (700, 10, 10) collects every few hundred allocations; a live
event fanned out to 1,000 subscribers allocates hundreds of thousands."""


def _settle_memory() -> None:
    """For a long-running process, once everything is imported: the objects made so
    far are kept out of the cyclic collector's passes (gc.freeze), and it runs less
    often, so a live event's fan-out is not paused by passes over objects that live
    as long as the process (tests/benchmarks/README.md has the subscription
    benchmark's figures both ways)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


@main.command()
@click.option("--check", is_flag=True, help="Exit 0 if a running worker answers a ping job, else 1.")
@click.option("--wait", default=10.0, show_default=True, help="Seconds --check waits for the answer.")
def worker(check: bool, wait: float) -> None:
    """Run the arq worker (or check that one is running)."""
    from app.redis import locate
    from tasks.worker import check as check_worker
    from tasks.worker import create_worker

    settings = _settings()
    location = locate(settings)
    try:
        if check:
            alive = asyncio.run(check_worker(location, wait))
            click.echo("worker: ok" if alive else "worker: no answer")
            sys.exit(0 if alive else 1)

        _settle_memory()

        async def run() -> None:
            # arq binds a worker to the event loop running when it is made.
            worker = create_worker(settings, location, own_database=True, handle_signals=True)
            try:
                await worker.async_run()
            except asyncio.CancelledError:
                click.echo("worker stopped", err=True)  # arq cancels its main task on SIGINT / SIGTERM
            finally:
                # Jobs still running after the grace period were cancelled; their
                # messages stay SENDING and expire to UNCERTAIN, never resent.
                with contextlib.suppress(asyncio.CancelledError):
                    await worker.close()

        uvloop.run(run())
    finally:
        location.close()


@main.command()
def dev() -> None:
    """Migrate, then run the API and the worker in one process on embedded defaults
    (HOST and PORT choose where it listens: 127.0.0.1:8000 unless set)."""
    from app.redis import locate
    from app.web import create_app
    from tasks.worker import create_worker

    settings = _settings()
    listening = _listen(settings.host, settings.port)  # a busy port fails here: no token, no Redis
    try:
        asyncio.run(db.migrate(settings))
        token = _run(settings, lambda: _demo_token(settings))
        location = locate(settings)
    except BaseException:
        listening.close()
        raise
    base = f"http://{settings.host}:{settings.port}"
    banner = (
        f"\nLeadline is running.\n  GraphiQL: {base}/graphql\n  Token:    {token}\n"
        f'  In GraphiQL\'s headers: {{"Authorization": "Bearer {token}"}}\n'
    )

    async def both() -> None:
        await db.init(settings)
        worker = create_worker(settings, location, own_database=False, handle_signals=False)
        from redis.asyncio import Redis

        redis = Redis.from_url(location.url)
        app = create_app(settings, redis=redis, manage_resources=False)
        server = _Server(uvicorn.Config(app, **uvicorn_options(settings)), banner=banner)
        worker_task = asyncio.create_task(worker.async_run())
        try:
            await server.serve(sockets=[listening])
        finally:
            worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
            await worker.close()
            await redis.aclose()
            await db.close()

    try:
        uvloop.run(both())
    finally:
        listening.close()
        location.close()


def _listen(host: str, port: int) -> socket.socket:
    """The socket `dev` serves on, bound before anything starts (as uvicorn binds it)."""
    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as error:
        listening.close()
        raise click.ClickException(
            f"Cannot listen on {host}:{port}: {error.strerror or error}. "
            f"Is another Leadline (or anything else) using port {port}? Stop it, or choose another port: "
            f"PORT={port + 1} leadline dev (HOST sets the address)."
        ) from None
    listening.set_inheritable(True)
    return listening


class _Server(uvicorn.Server):
    """uvicorn's server for `dev`, which runs more than uvicorn: after a graceful
    shutdown on SIGTERM, uvicorn raises the signal again, which kills the process
    before `dev` stops its worker and the embedded Redis. This one returns instead.
    Its banner is printed once it listens."""

    def __init__(self, config: uvicorn.Config, *, banner: str) -> None:
        super().__init__(config)
        self.banner = banner

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            click.echo(self.banner)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        self._captured_signals.clear()


async def _demo_token(settings: Settings) -> str:
    """The development token: the Demo organization's admin token, made on first run
    and kept in the data directory (like the generated secret key)."""
    path = settings.data_dir / "dev-token"
    clock = SystemClock()
    if path.exists():
        token = path.read_text().strip()
        if await accounts.authenticate(token, clock) is not None:
            return token
    demo = await Organization.filter(name=DEMO_ORGANIZATION).order_by("id").first()
    if demo is None:
        created = await accounts.create_organization(
            name=DEMO_ORGANIZATION, admin_email="admin@demo.example", admin_name="Demo Admin", clock=clock
        )
        await presets.apply(actor=system_actor(created.organization.id, clock), name=DEMO_PRESET)
        token = created.token
    else:
        admin = await User.filter(organization_id=demo.id, role="ADMIN", active=True).order_by("id").first()
        if admin is None:
            raise click.ClickException("The Demo organization has no active admin.")
        actor = Actor(organization_id=demo.id, user_id=admin.id, role=admin.role, clock=clock)
        token, _ = await accounts.create_token(actor=actor, name="leadline dev", user_id=None)
    datadir.write_file(path, (token + "\n").encode())
    return token


@main.group()
def org() -> None:
    """Organizations."""


@org.command("create")
@click.argument("name")
@click.option("--admin-email", required=True)
@click.option("--admin-name")
def org_create(name: str, admin_email: str, admin_name: str | None) -> None:
    """Create an organization with its first ADMIN; prints organization_id, user_id and token as JSON."""
    settings = _settings()

    async def work() -> dict[str, Any]:
        created = await accounts.create_organization(
            name=name, admin_email=admin_email, admin_name=admin_name, clock=SystemClock()
        )
        return {
            "organization_id": ids.encode("Organization", created.organization.id),
            "user_id": ids.encode("User", created.admin.id),
            "token": created.token,
        }

    click.echo(json.dumps(_run(settings, work)))


@main.group()
def preset() -> None:
    """Ready-made configurations."""


@preset.command("list")
def preset_list() -> None:
    """List the presets."""
    for name, description in presets.describe():
        click.echo(f"{name}\t{description}")


@preset.command("apply")
@click.argument("name")
@click.option("--org", "org_id", required=True, help="Organization id (as `org create` prints it).")
def preset_apply(name: str, org_id: str) -> None:
    """Apply preset NAME to an organization (applying it twice duplicates nothing)."""
    settings = _settings()

    async def work() -> list[str]:
        workflows = await presets.apply(actor=await _org_actor(org_id), name=name)
        return [w.name for w in workflows]

    click.echo(f"applied {name}: workflows {', '.join(_run(settings, work))}")


class _ImportCommand(click.Command):
    """`import`'s help, which ends with the fields a column can fill."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from app.import_columns import field_list

        with formatter.section("Fields (for --map HEADER=FIELD)"):
            formatter.write_text(
                "Headers name them whatever their case and punctuation, or by a synonym"
                " (E-mail, Mail, Mobile, Cell, Phone Number, Organization, Company Name, Job Title, CRM ID, ...)."
            )
            formatter.write_paragraph()
            formatter.write_dl(field_list())


@main.command("import", cls=_ImportCommand)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--org", "org_id", required=True, help="Organization id (as `org create` prints it).")
@click.option(
    "--on-duplicate",
    type=click.Choice(["skip", "update", "error"]),
    default="skip",
    show_default=True,
    help="A row whose external id or email a prospect already has: leave it, update the prospect, or reject the row.",
)
@click.option(
    "--map", "maps", multiple=True, metavar="HEADER=FIELD", help="Fill FIELD from column HEADER (repeatable)."
)
@click.option(
    "--dry-run", is_flag=True, help="Report what would be created, updated, skipped and rejected; write nothing."
)
def import_(file: Path, org_id: str, on_duplicate: str, maps: tuple[str, ...], dry_run: bool) -> None:
    """Import prospects from a CSV file (comma, semicolon or tab separated, UTF-8).

    Bad rows are reported by line and skipped; the rest are created, or matched
    to the prospects already there by external id, then email (see --on-duplicate).
    Progress goes to stderr, the counts to stdout as JSON."""
    from app.import_columns import parse_maps
    from app.importer import MAX_ERRORS, import_csv
    from app.prospects.upsert import OnDuplicate

    settings = _settings()
    try:
        targets = parse_maps(maps)
    except DomainError as error:
        raise click.UsageError(error.message) from None

    size = file.stat().st_size

    async def work() -> Any:
        actor = await _org_actor(org_id)
        with _import_progress(size) as progress:
            return await import_csv(
                actor=actor,
                path=file,
                maps=targets,
                on_duplicate=OnDuplicate(on_duplicate),
                dry_run=dry_run,
                progress=progress,
            )

    result = _run(settings, work)
    delimiter = {",": "comma", ";": "semicolon", "\t": "tab"}[result.delimiter]
    shown = ", ".join(f"{c.header} -> {c.target}" for c in result.columns)
    click.echo(f"columns ({delimiter}-separated): {shown}", err=True)
    for bad in result.errors:
        click.echo(f"line {bad.line}: {bad.field}: {bad.message}", err=True)
    if result.rejected > len(result.errors):
        click.echo(
            f"... and {result.rejected - len(result.errors):,} more rejected rows (the first {MAX_ERRORS:,} are listed)",
            err=True,
        )
    if dry_run:
        click.echo("dry run: nothing was written", err=True)
    elif result.created == result.updated == 0 and result.skipped:
        click.echo(
            f"nothing changed: {result.skipped:,} rows match prospects already there"
            + (" (--on-duplicate update updates them)" if on_duplicate == "skip" else ""),
            err=True,
        )
    counts = {
        "created": result.created,
        "updated": result.updated,
        "skipped": result.skipped,
        "rejected": result.rejected,
    }
    click.echo(json.dumps({"dry_run": True, **counts} if dry_run else counts))


PROGRESS_EVERY = 5.0
"""Seconds between the progress lines written when stderr is not a terminal (a log)."""


def _import_progress(size: int) -> contextlib.AbstractContextManager[Callable[[int, int], None]]:
    """A bar of bytes with the rows counted beside it on a terminal; otherwise a
    line every PROGRESS_EVERY seconds and one at the end, which a log keeps readable."""
    return _progress_bar(size) if sys.stderr.isatty() else _progress_lines(size)


@contextlib.contextmanager
def _progress_bar(size: int) -> Iterator[Callable[[int, int], None]]:
    from tqdm import tqdm

    with tqdm(total=size, unit="B", unit_scale=True, desc="importing", file=sys.stderr) as bar:

        def update(rows: int, done: int) -> None:
            bar.set_postfix_str(f"{rows:,} rows", refresh=False)
            bar.update(max(0, done - bar.n))

        yield update


@contextlib.contextmanager
def _progress_lines(size: int) -> Iterator[Callable[[int, int], None]]:
    started = last = time.monotonic()
    state = [0, 0]

    def line(rows: int, done: int) -> None:
        share = f" ({100 * done / size:.0f} %)" if size else ""
        elapsed = time.monotonic() - started
        click.echo(
            f"importing: {rows:,} rows, {done / 1e6:,.1f} of {size / 1e6:,.1f} MB{share}, {elapsed:,.0f} s", err=True
        )

    def update(rows: int, done: int) -> None:
        nonlocal last
        state[:] = [rows, done]
        if time.monotonic() - last >= PROGRESS_EVERY:
            last = time.monotonic()
            line(rows, done)

    yield update
    line(*state)


@main.group()
def suppress() -> None:
    """The suppression list: addresses never to contact."""


@suppress.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--org", "org_id", required=True, help="Organization id (as `org create` prints it).")
@click.option(
    "--reason",
    type=click.Choice([r.value for r in SuppressionReason], case_sensitive=False),
    help="For lines without a reason column's value (default MANUAL).",
)
@click.option(
    "--channel",
    type=click.Choice([c.value for c in Channel], case_sensitive=False),
    help="For lines without a channel column's value (default: an email is EMAIL, else SMS).",
)
def suppress_import(file: Path, org_id: str, reason: str | None, channel: str | None) -> None:
    """Add a CSV of addresses (columns email / phone / address, optional channel and
    reason; or one address per line) to the suppression list; bad lines are reported
    by line."""
    from tqdm import tqdm

    from app.prospects.suppression_csv import Rejected, import_csv

    settings = _settings()
    size = file.stat().st_size

    def report(line: Rejected) -> None:
        tqdm.write(f"line {line.line}: {line.field}: {line.message}", file=sys.stderr)

    async def work() -> Any:
        actor = await _org_actor(org_id)
        with tqdm(total=size, unit="B", unit_scale=True, desc="suppressing", file=sys.stderr) as bar:

            def progress(done: int) -> None:
                bar.update(max(0, done - bar.n))

            return await import_csv(
                actor=actor,
                path=file,
                channel=Channel(channel.upper()) if channel else None,
                reason=SuppressionReason(reason.upper()) if reason else None,
                progress=progress,
                rejected=report,
            )

    result = _run(settings, work)
    click.echo(json.dumps({"added": result.added, "already_present": result.present, "rejected": result.rejected}))


@main.command()
@click.option("--org", "org_id", required=True, help="Organization id (as `org create` prints it).")
@click.option("--user", "user_id", default=None, help="A user id: everything to that user (default: round robin).")
@click.option("--status", "statuses", multiple=True, help="Only prospects in this status (repeatable).")
def assign(org_id: str, user_id: str | None, statuses: tuple[str, ...]) -> None:
    """Distribute the unassigned prospects round robin over the active agents (or to --user)."""
    from tqdm import tqdm

    from app.prospects import distribution

    settings = _settings()
    user = None if user_id is None else _pk("User", user_id)
    if user_id is not None and user is None:
        raise click.ClickException(f"No user {user_id!r}.")

    async def work() -> int:
        actor = await _org_actor(org_id)
        with tqdm(unit="prospect", desc="assigning", file=sys.stderr) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            return await distribution.distribute(
                actor=actor, user_id=user, status_names=list(statuses) or None, progress=progress
            )

    click.echo(json.dumps({"assigned": _run(settings, work)}))


@main.command()
def schema() -> None:
    """Print the GraphQL schema (SDL)."""
    from schema.build import sdl

    click.echo(sdl(), nl=False)
