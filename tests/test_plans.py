"""Hot statements keep their plans when the statistics are stale. Each case is a
table whose statistics were taken before it changed (as in a campaign's first
minute, before autovacuum analyzes it), a statement whose plan could read every
row of it from such statistics, and the plan it must have.

The API's reads (issue 24) on both databases: a page's per-prospect lists by
their prospect (PostgreSQL: under the generic plan a prepared statement may
switch to after five runs too), and an organization's pages by (organization_id,
id), with a big organization and a small one created after it, under fresh
statistics and stale ones. A page's generic plan may read the big organization's
rows whatever the indexes: Leadline's sessions never use one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from tortoise import connections
from tortoise.queryset import CountQuery, QuerySet
from tortoise.transactions import in_transaction

from app import bulk, presets
from app.accounts.models import Role
from app.accounts.read import of_organization
from app.clock import FrozenClock
from app.events import log, relay
from app.events.models import EventType
from app.messaging.models import Message, MessageState
from app.prospects import read as prospects_read
from app.prospects import suppressions
from app.prospects.events import prospect_event
from app.prospects.models import Activity, Prospect, StatusChange, Task
from app.sequences import read as sequences_read
from app.sequences import scheduler
from app.sequences.models import Enrollment, StageChange, StepType
from app.sequences.service import StepSpec
from tests.conftest import GraphQL, Org, make_org
from tests.factories import populate
from tests.test_scheduler import setup

postgres = pytest.mark.postgres


@contextmanager
def statements_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, list[Any]]]]:
    """The statements run meanwhile, with their parameters, as asyncpg sends them
    (inside transactions too, which run on connections of their own)."""
    statements: list[tuple[str, list[Any]]] = []
    with monkeypatch.context() as patch:
        for name in ("execute", "fetch"):
            run = getattr(asyncpg.Connection, name)

            async def record(self: asyncpg.Connection, sql: str, *args: Any, _run: Any = run, **kwargs: Any) -> Any:
                statements.append((sql, list(args)))
                return await _run(self, sql, *args, **kwargs)

            patch.setattr(asyncpg.Connection, name, record)
        yield statements


async def plan_of(sql: str, params: list[Any] | None = None, *, seqscan: bool = True) -> str:
    async with in_transaction() as connection:
        if not seqscan:  # small tables: ask which indexes the planner would take
            await connection.execute_script("SET LOCAL enable_seqscan = off")
        rows = await connection.execute_query_dict(f"EXPLAIN {sql}", params or [])
    return "\n".join(row["QUERY PLAN"] for row in rows)


@postgres
async def test_the_relay_finds_nothing_new_by_index_after_stale_statistics(database: str, clock: FrozenClock) -> None:
    org = await make_org("Acme", clock)
    await log.record(
        prospect_event(EventType.PROSPECT_CREATED, org.id, n, clock.now(), source="test") for n in range(3000)
    )
    db = connections.get("default")
    await db.execute_script("ANALYZE event")  # every event unsequenced, as far as the statistics know
    numbering = await plan_of(log.NUMBER_POSTGRES, [1000])
    assert "Seq Scan" not in numbering and "event_unsequenced" in numbering, numbering
    assert "Index Scan using event_pkey" in numbering, numbering  # each numbered event found by id
    assert await log.sequence(limit=5000) == 3000

    plan = await plan_of(relay._ANYTHING_NEW)
    assert "Seq Scan" not in plan and "event_unsequenced" in plan, plan  # was: a scan of every event


@postgres
async def test_the_claim_goes_by_primary_key_while_a_campaign_fills_the_queue(
    database: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = await make_org("Acme", clock)
    db = connections.get("default")
    await db.execute_script("ANALYZE message")  # analyzed while empty
    people = [{"first_name": f"P{i}", "email": f"p{i}@client.example"} for i in range(600)]
    await setup(org, clock, people=people, steps=[StepSpec(StepType.EMAIL, 0, "Hi", "s")])
    while (await scheduler.run_pass(clock)).claimed:
        pass
    queued = await Message.filter(state=MessageState.QUEUED).order_by("id").values_list("id", flat=True)
    assert len(queued) == 600

    with statements_run(monkeypatch) as statements:
        claimed = await bulk.compare_and_set(
            Message,
            queued[:50],  # type: ignore[arg-type]
            expect={"state": MessageState.QUEUED},
            at_most={"next_attempt_at": clock.now()},
            values={"state": MessageState.SENDING},
        )
    assert len(claimed) == 50
    [(sql, params)] = statements

    plan = await plan_of(sql, params, seqscan=False)
    assert "message_pkey" in plan, plan  # was: the index on (state, next_attempt_at), every QUEUED row


@postgres
async def test_the_scheduler_moves_enrollments_on_by_primary_key_while_many_are_due(
    database: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = await make_org("Acme", clock)
    await connections.get("default").execute_script("ANALYZE enrollment")  # analyzed while none was due
    people = [{"first_name": f"P{i}", "email": f"p{i}@client.example"} for i in range(600)]
    await setup(org, clock, people=people, steps=[StepSpec(StepType.EMAIL, 0, "Hi", "s")])

    with statements_run(monkeypatch) as statements:
        assert (await scheduler.run_pass(clock, batch=500)).claimed == 500
    [(sql, params)] = [(sql, params) for sql, params in statements if sql.startswith('UPDATE "enrollment"')]

    plan = await plan_of(sql, params, seqscan=False)
    # was: the due index, every due enrollment read and filtered by the batch's ids
    assert "enrollment_pkey" in plan and "enrollment_due_at_partial" not in plan, plan


# ---- the API's reads at scale (issue 24) ----

BIG, SMALL = 4000, 40
"""Prospects of the big organization and of the small one created after it."""


def _is_postgres() -> bool:
    return connections.get("default").capabilities.dialect == "postgres"


def _numbers(count: int) -> str:
    """1..count as a table ``n(i)``, on both databases."""
    return f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {int(count)}) "


async def _fill(org: Org, count: int) -> None:
    """``count`` more prospects with 1.5 enrollments each (every prospect in one
    sequence, every other in a second), an activity, a status change, a task, a
    suppression and, for each enrollment, a stage change and a message; and a
    sequence for every 20 prospects."""
    db = connections.get("default")
    m = (lambda n: f"${n}") if _is_postgres() else (lambda n: f"?{n}")
    now = "CURRENT_TIMESTAMP"
    [floor] = await db.execute_query_dict(
        'SELECT coalesce(max(p."id"), 0) AS "prospect", coalesce(max(e."id"), 0) AS "enrollment" '
        'FROM "prospect" p LEFT JOIN "enrollment" e ON e."prospect_id" = p."id"'
    )
    [status] = await db.execute_query_dict(
        f'SELECT min("id") AS "id" FROM "status" WHERE "organization_id" = {m(1)}', [org.id]
    )
    await db.execute_query(
        _numbers(count // 20 + 2) + 'INSERT INTO "sequence" ("organization_id", "name", "active", "stop_on_reply", '
        f'"unresponsive_after_seconds", "created_at") SELECT {m(1)}, {m(2)} || i, true, true, 600, {now} FROM n',
        [org.id, f"S{floor['prospect']}-"],
    )
    first_two = f'SELECT "id" FROM "sequence" WHERE "organization_id" = {m(1)} AND "name" IN ({m(2)}, {m(3)})'
    names = [org.id, f"S{floor['prospect']}-1", f"S{floor['prospect']}-2"]
    await db.execute_query(
        'INSERT INTO "sequence_step" ("organization_id", "sequence_id", "position", "type", "delay_seconds", '
        f'"body", "thread_with_previous") SELECT {m(1)}, "id", 0, \'EMAIL\', 0, \'Hi\', false FROM ({first_two}) s',
        names,
    )
    await db.execute_query(
        _numbers(count) + 'INSERT INTO "prospect" ("organization_id", "status_id", "email", "custom_fields", '
        '"search_text", "do_not_contact", "opted_out_channels", "contact_attempts", "conversation_state", '
        f"\"created_at\", \"updated_at\") SELECT {m(1)}, {m(2)}, {m(3)} || i || '@x.example', '{{}}', 'p', "
        f"false, '[]', 0, 'NEW', {now}, {now} FROM n",
        [org.id, status["id"], f"{org.id}-{floor['prospect']}-"],
    )
    mine = f'FROM "prospect" WHERE "organization_id" = {m(1)} AND "id" > {int(floor["prospect"])}'
    await db.execute_query(
        'INSERT INTO "enrollment" ("organization_id", "prospect_id", "sequence_id", "stage", "enrolled_at", '
        f'"finished_at") SELECT {m(1)}, p."id", s."id", \'SUCCESS\', {now}, {now} FROM (SELECT "id" {mine}) p '
        f'JOIN ({first_two}) s ON s."id" = (SELECT min("id") FROM ({first_two}) f) OR p."id" % 2 = 0',
        names,
    )
    for table, columns, values in [
        ("activity", '"interaction", "at"', f"'CALL', {now}"),
        ("status_change", '"to_status_id", "cause", "at"', f"{status['id']}, 'USER', {now}"),
        ("task", '"kind", "due_at", "created_at"', f"'TODO', {now}, {now}"),
    ]:
        await db.execute_query(
            f'INSERT INTO "{table}" ("organization_id", "prospect_id", {columns}) SELECT {m(1)}, "id", {values} {mine}',
            [org.id],
        )
    enrolled = f'FROM "enrollment" WHERE "organization_id" = {m(1)} AND "id" > {int(floor["enrollment"])}'
    await db.execute_query(
        'INSERT INTO "stage_change" ("organization_id", "enrollment_id", "to_stage", "cause", "at") '
        f"SELECT {m(1)}, \"id\", 'SUCCESS', 'USER', {now} {enrolled}",
        [org.id],
    )
    await db.execute_query(
        'INSERT INTO "message" ("organization_id", "prospect_id", "enrollment_id", "channel", "direction", "state", '
        f'"body", "attempts", "auto_reply", "created_at") SELECT {m(1)}, "prospect_id", "id", \'EMAIL\', '
        f"'OUTBOUND', 'SENT', 'Hi', 1, false, {now} {enrolled}",
        [org.id],
    )
    await db.execute_query(
        'INSERT INTO "suppression" ("organization_id", "channel", "address", "reason", "created_at") '
        f"SELECT {m(1)}, 'EMAIL', \"email\", 'MANUAL', {now} {mine}",
        [org.id],
    )


async def _skewed(clock: FrozenClock, *, stale: bool, analyze: bool = True) -> tuple[Org, Org]:
    """A big organization and a small one created after it. Analyzed when all their
    rows were in, or (``stale``) when the big one had half of its rows and the small
    one none (autovacuum analyzes a table once a tenth of it changed: until then
    the planner believes the small organization's rows do not exist); or never."""
    big, small = await make_org("Big", clock), await make_org("Small", clock)
    for org in (big, small):
        await presets.apply(actor=org.actor(Role.ADMIN, clock), name="lead-workflow")
    db = connections.get("default")
    await _fill(big, BIG // 2)
    if stale and analyze:
        await db.execute_script("ANALYZE")
    await _fill(big, BIG // 2)
    await _fill(small, SMALL)
    if not stale and analyze:
        await db.execute_script("ANALYZE")
    return big, small


def _statement(query: Any) -> tuple[str, list[Any]]:
    """The SQL and parameters Tortoise runs for ``query``."""
    query._choose_db_if_not_chosen()
    query._make_query()
    sql, params = query.query.get_parameterized_sql()
    return sql, list(params)


async def _index(table: str, columns: tuple[str, ...]) -> str:
    """The name of the index of ``table`` on exactly ``columns``, in order."""
    db = connections.get("default")
    if _is_postgres():
        rows = await db.execute_query_dict(
            "SELECT indexname AS name, indexdef AS definition FROM pg_indexes WHERE tablename = $1", [table]
        )
        wanted = "(" + ", ".join(columns) + ")"
        names = [row["name"] for row in rows if row["definition"].endswith(wanted)]
    else:
        names = []
        for row in await db.execute_query_dict(f'PRAGMA index_list("{table}")'):
            info = await db.execute_query_dict(f'PRAGMA index_info("{row["name"]}")')
            if tuple(column["name"] for column in sorted(info, key=lambda c: c["seqno"])) == columns:
                names.append(row["name"])
    assert len(names) == 1, (table, columns, names)
    return str(names[0])


def _literal(value: Any) -> str:
    """``value`` as a PostgreSQL literal (the parameters Tortoise passes)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "ARRAY[" + ", ".join(_literal(item) for item in value) + "]"
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text.replace("'", "''") + "'"


async def _plans(sql: str, params: list[Any]) -> dict[str, str]:
    """How the database would run the statement: PostgreSQL's plan for these values
    and its generic plan (what a prepared statement may use after five runs);
    SQLite's query plan."""
    if not _is_postgres():
        async with in_transaction() as connection:
            rows = await connection.execute_query_dict(f"EXPLAIN QUERY PLAN {sql}", params)
        return {"sqlite": "\n".join(str(row["detail"]) for row in rows)}
    custom = await plan_of(sql, params)
    async with in_transaction() as connection:
        await connection.execute_script("SET LOCAL plan_cache_mode = force_generic_plan")
        await connection.execute_script(f"PREPARE leadline_generic AS {sql}")
        try:
            values = ", ".join(_literal(value) for value in params)  # EXECUTE takes no bound parameters
            rows = await connection.execute_query_dict(f"EXPLAIN EXECUTE leadline_generic({values})")
        finally:  # a prepared statement outlives the transaction
            await connection.execute_script("DEALLOCATE leadline_generic")
    generic = "\n".join(row["QUERY PLAN"] for row in rows)
    assert "$1" in generic or not params, generic  # a plan made without the values
    return {"custom": custom, "generic": generic}


def _uses(plans: dict[str, str], index: str) -> None:
    for kind, plan in plans.items():
        used = rf"USING (COVERING )?INDEX {index} |Index Scan (Backward )?using {index} |Bitmap Index Scan on {index}\b"
        assert re.search(used, plan), (kind, index, plan)
        assert "Seq Scan" not in plan and "SCAN " not in plan.replace("SCAN CONSTANT ROW", ""), (kind, plan)


def _page(query: QuerySet[Any], *, descending: bool = False) -> tuple[str, list[Any]]:
    """The first page's statement, as schema.pagination.paginate runs it."""
    return _statement(query.order_by("-id" if descending else "id").limit(101))


@pytest.mark.parametrize("statistics", ["analyzed", "stale", "never"])
async def test_a_pages_lists_are_read_by_their_prospect(database: str, clock: FrozenClock, statistics: str) -> None:
    """The DataLoaders of a page of the big organization: each list (enrollments,
    activities, status history, tasks; stage changes and messages by enrollment) is
    read through its index, not from every row of the organization."""
    if statistics == "never" and _is_postgres():
        pytest.skip("PostgreSQL's autovacuum analyzes a table that grew")
    big, _ = await _skewed(clock, stale=statistics == "stale", analyze=statistics != "never")
    page = await Prospect.filter(organization_id=big.id).order_by("id").limit(100).values_list("id", flat=True)
    enrollments = await Enrollment.filter(prospect_id__in=page).values_list("id", flat=True)
    assert len(page) == 100 and len(enrollments) == 150
    for model, table in [
        (Enrollment, "enrollment"),
        (Activity, "activity"),
        (StatusChange, "status_change"),
        (Task, "task"),
    ]:
        query = of_organization(model, big.id).filter(prospect_id__in=page).order_by("id")
        plans = await _plans(*_statement(query))
        if not _is_postgres() and statistics != "analyzed" and table in ("enrollment", "task"):
            # SQLite without statistics (as it runs: nothing analyzes it) estimates
            # ten rows for any equality, and with stale ones may too: the
            # organization's rows in id order can beat a hundred look-ups. Either
            # way only the organization's rows, never another's.
            organization_order = await _index(table, ("organization_id", "id"))
            if organization_order in plans["sqlite"]:
                assert plans == {"sqlite": f"SEARCH {table} USING INDEX {organization_order} (organization_id=?)"}
                continue
        _uses(plans, await _index(table, ("prospect_id",)))
    by_enrollment = of_organization(StageChange, big.id).filter(enrollment_id__in=enrollments).order_by("id")
    _uses(await _plans(*_statement(by_enrollment)), await _index("stage_change", ("enrollment_id",)))
    threads = Message.filter(enrollment_id__in=enrollments).values("id", "enrollment_id")
    _uses(await _plans(*_statement(threads)), await _index("message", ("enrollment_id",)))


@pytest.mark.parametrize("stale", [False, True], ids=["analyzed", "stale"])
async def test_a_small_organizations_pages_read_only_its_rows(database: str, clock: FrozenClock, stale: bool) -> None:
    """Each page of the organization created after the big one, in id order, goes
    by (organization_id, id): not the primary key filtered by organization (every
    row of the big one read first), nor all of its rows sorted."""
    _, small = await _skewed(clock, stale=stale)
    actor = small.actor(Role.ADMIN, clock)
    pages: list[tuple[str, tuple[str, ...], tuple[str, list[Any]]]] = [
        ("prospect", ("organization_id", "id"), _page(prospects_read.prospects(actor))),
        ("task", ("organization_id", "id"), _page(prospects_read.tasks(actor))),
        ("enrollment", ("organization_id", "id"), _page(sequences_read.enrollments(actor))),
        ("suppression", ("organization_id", "id"), _page(await suppressions.listed(actor), descending=True)),
    ]
    for table, columns, statement in pages:
        plans = await _plans(*statement)
        # A page's generic plan (the organization unknown) may take the primary key
        # filtered by organization whatever the indexes: with statistics that know
        # the big organization only, and at 100,000 prospects with fresh ones (22 ms,
        # tests/benchmarks/README.md). Leadline's sessions never use a generic plan
        # (test_sessions_plan_each_statement_for_its_values).
        plans.pop("generic", None)
        _uses(plans, await _index(table, columns))
    assert len(await prospects_read.prospects(actor).order_by("id").limit(101)) == SMALL


@postgres
@pytest.mark.parametrize("stale", [False, True], ids=["analyzed", "stale"])
async def test_a_small_organizations_filtered_page_stays_off_the_big_ones_rows(
    database: str, clock: FrozenClock, stale: bool
) -> None:
    """A filtered page reads by organization, never the primary key filtered by
    organization nor the whole table."""
    _, small = await _skewed(clock, stale=stale)
    actor = small.actor(Role.ADMIN, clock)
    [status] = await prospects_read.prospects(actor).limit(1).values_list("status_id", flat=True)
    for query in [
        prospects_read.prospects(actor, status_ids=[status]),
        prospects_read.prospects(actor, do_not_contact=False),
    ]:
        plans = await _plans(*_page(query))
        plans.pop("generic")  # as above: Leadline's sessions plan each execution
        for kind, plan in plans.items():
            assert "Seq Scan" not in plan and "prospect_pkey" not in plan, (kind, plan)
            assert "organization_id = " in plan, (kind, plan)


@postgres
async def test_sessions_plan_each_statement_for_its_values(database: str, clock: FrozenClock) -> None:
    """Leadline's connections plan every execution of a prepared statement for its
    values: after five runs PostgreSQL may otherwise keep a generic plan, which for
    the second organization's page, with statistics that know only the first,
    reads every row of the first through the primary key."""
    _, small = await _skewed(clock, stale=True)
    sql, params = _page(prospects_read.prospects(small.actor(Role.ADMIN, clock)))
    db = connections.get("default")
    [setting] = await db.execute_query_dict("SHOW plan_cache_mode")
    assert setting["plan_cache_mode"] == "force_custom_plan"
    async with in_transaction() as connection:
        await connection.execute_script(f"PREPARE leadline_probe AS {sql}")
        values = ", ".join(_literal(value) for value in params)
        try:
            for _ in range(8):  # past the five custom plans after which a generic one may be kept
                await connection.execute_query(f"EXECUTE leadline_probe({values})")
            rows = await connection.execute_query_dict(f"EXPLAIN EXECUTE leadline_probe({values})")
        finally:
            await connection.execute_script("DEALLOCATE leadline_probe")
    generic = await _plans(sql, params)
    plan = "\n".join(row["QUERY PLAN"] for row in rows)
    organization_order = await _index("prospect", ("organization_id", "id"))
    assert f"Index Scan using {organization_order} " in plan and "$1" not in plan, plan
    # what a session with PostgreSQL's default (auto) would risk:
    assert "prospect_pkey" in generic["generic"], generic


async def test_a_page_counts_its_rows_only_when_total_count_is_selected(
    gql: GraphQL, org: Org, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A COUNT over a big organization costs more than its page (16-36 ms with a
    filter at 100,000 prospects): totalCount is counted when selected, once per
    connection however many aliases ask for it, and not otherwise."""
    await populate(org, clock)
    counted: list[str] = []
    run = CountQuery._execute

    async def count(self: CountQuery, _run: Any = run) -> int:
        counted.append(self.model.__name__)
        return int(await _run(self))

    monkeypatch.setattr(CountQuery, "_execute", count)
    token = org.tokens[Role.ADMIN]
    page = await gql(token, "{ prospects(first: 1) { edges { node { id tasks { edges { node { id } } } } } } }")
    assert "errors" not in page and len(page["data"]["prospects"]["edges"]) == 1
    assert counted == []

    both = await gql(
        token,
        "{ prospects(first: 1) { a: totalCount b: totalCount edges { node { tasks { totalCount } } } }"
        " tasks { totalCount } }",
    )
    assert "errors" not in both, both
    prospects = both["data"]["prospects"]
    assert prospects["a"] == prospects["b"] == await Prospect.filter(organization_id=org.id).count()
    assert prospects["edges"][0]["node"]["tasks"]["totalCount"] >= 0  # counted from the loaded rows
    assert both["data"]["tasks"]["totalCount"] == await Task.filter(organization_id=org.id).count()
    # Once per connection, in either order (the two root fields resolve concurrently);
    # the last two: this test's own.
    assert sorted(counted[:2]) == ["Prospect", "Task"] and counted[2:] == ["Prospect", "Task"]
