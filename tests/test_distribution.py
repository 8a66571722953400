"""Distribution and reports (SPEC R11, contract part 40)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest

from app import bulk, ids, presets
from app.accounts import service as accounts
from app.accounts.actor import Actor
from app.accounts.models import Organization, Role, User
from app.clock import FrozenClock
from app.errors import Forbidden, InvalidInput, NotFound, NotPullable
from app.events.models import Event
from app.prospects import distribution, reports
from app.prospects import service as prospects
from app.prospects.models import Prospect, Task, TaskKind
from app.workflows.models import Action, Interaction, Status
from tests.conftest import GraphQL, Org, QueryCounter, mutate

ASSIGN = "prospects { id owner { id } assignedAt reassignableAt } errors { code message field }"


@pytest.fixture
async def agents(org: Org, clock: FrozenClock) -> list[User]:
    """The lead workflow, and three active agents (plus an inactive one)."""
    admin = org.actor(Role.ADMIN, clock)
    await presets.apply(actor=admin, name="lead-workflow")
    more = [
        await accounts.create_user(actor=admin, name=f"Agent {n}", email=f"agent{n}@acme.example", role=Role.AGENT)
        for n in (2, 3, 4)
    ]
    await User.filter(id=more[-1].id).update(active=False)
    return [org.users[Role.AGENT], *more[:2]]


async def make(org: Org, clock: FrozenClock, count: int, **values: object) -> list[Prospect]:
    made, errors = await prospects.create_prospects(
        actor=org.actor(Role.ADMIN, clock),
        inputs=[{"first_name": f"P{n}", **values} for n in range(count)],
    )
    assert not errors
    return made


def gids(rows: list[Prospect]) -> list[str]:
    return [ids.encode("Prospect", p.id) for p in rows]


def pks(rows: list[Prospect]) -> list[int]:
    return [p.id for p in rows]


async def test_round_robin_spreads_evenly_across_calls_and_only_over_active_agents(
    org: Org, clock: FrozenClock, agents: list[User]
) -> None:
    manager = org.actor(Role.MANAGER, clock)
    nine = await make(org, clock, 9)
    assigned, errors = await distribution.assign_prospects(actor=manager, prospect_ids=pks(nine), user_id=None)
    assert not errors
    assert Counter(p.owner_id for p in assigned) == {agent.id: 3 for agent in agents}
    singles = await make(org, clock, 3)
    owners = []
    for prospect in singles:
        [one], _ = await distribution.assign_prospects(actor=manager, prospect_ids=pks([prospect]), user_id=None)
        owners.append(one.owner_id)
    assert sorted(owners) == sorted(agent.id for agent in agents)  # three calls, three different agents
    events = await Event.filter(organization_id=org.id, type="ASSIGNMENT_CHANGED").count()
    assert events == 12
    assert all(p.assigned_at == clock.now() for p in await Prospect.filter(organization_id=org.id))


async def test_a_bulk_assignment_costs_the_same_statements_for_3_or_30_prospects(
    org: Org, clock: FrozenClock, agents: list[User], sql_queries: QueryCounter
) -> None:
    manager = org.actor(Role.MANAGER, clock)
    costs = []
    for count in (3, 30):
        batch = await make(org, clock, count)
        sql_queries.count = 0
        assigned, _ = await distribution.assign_prospects(actor=manager, prospect_ids=pks(batch), user_id=None)
        costs.append(sql_queries.count)
        assert len({p.owner_id for p in assigned}) == 3
    assert costs[0] == costs[1], costs  # one UPDATE per agent, one INSERT of events: not per prospect
    assert await Event.filter(organization_id=org.id, type="ASSIGNMENT_CHANGED").count() == 33


async def test_push_to_a_user_and_bulk_errors_by_index(
    gql: GraphQL, org: Org, other_org: Org, clock: FrozenClock, agents: list[User]
) -> None:
    [mine] = await make(org, clock, 1)
    await presets.apply(actor=other_org.actor(Role.ADMIN, clock), name="lead-workflow")
    [foreign] = await make(other_org, clock, 1)
    agent = ids.encode("User", agents[1].id)
    payload = await mutate(
        gql, org.tokens[Role.MANAGER], "assignProspects", ASSIGN, ids=gids([mine, foreign]), userId=agent
    )
    assert [p["owner"]["id"] for p in payload["prospects"]] == [agent]
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("NOT_FOUND", ["input", "ids", "1"])]
    assert (await Prospect.get(id=foreign.id)).owner_id is None  # the foreign prospect untouched
    for user in (ids.encode("User", other_org.users[Role.AGENT].id), ids.encode("User", 999999)):
        refused = await mutate(gql, org.tokens[Role.MANAGER], "assignProspects", ASSIGN, ids=gids([mine]), userId=user)
        assert [(e["code"], e["field"]) for e in refused["errors"]] == [("NOT_FOUND", ["input", "userId"])]
    inactive = await User.get(organization_id=org.id, active=False)
    refused = await mutate(
        gql,
        org.tokens[Role.MANAGER],
        "assignProspects",
        ASSIGN,
        ids=gids([mine]),
        userId=ids.encode("User", inactive.id),
    )
    assert [e["code"] for e in refused["errors"]] == ["NOT_FOUND"]


async def test_an_agent_pulls_and_returns_but_never_assigns(
    gql: GraphQL, org: Org, clock: FrozenClock, agents: list[User]
) -> None:
    made = await make(org, clock, 2)
    token = org.tokens[Role.AGENT]
    refused = await mutate(
        gql, token, "assignProspects", ASSIGN, ids=gids(made), userId=ids.encode("User", agents[1].id)
    )
    assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN"] and refused["prospects"] == []
    assert await Prospect.filter(organization_id=org.id, owner_id__not_isnull=True).count() == 0
    pulled = await mutate(gql, token, "pullProspects", ASSIGN, count=1)
    assert [p["id"] for p in pulled["prospects"]] == gids(made[:1])  # oldest first
    assert pulled["prospects"][0]["owner"]["id"] == org.user_gid(Role.AGENT)
    returned = await mutate(gql, token, "unassignProspects", ASSIGN, ids=gids(made[:1]))
    assert returned["errors"] == [] and returned["prospects"][0]["owner"] is None
    for count in (0, 101):
        bad = await mutate(gql, token, "pullProspects", ASSIGN, count=count)
        assert [(e["code"], e["field"]) for e in bad["errors"]] == [("INVALID_INPUT", ["input", "count"])]


async def test_pull_takes_the_oldest_pullable_of_the_given_system_statuses(
    org: Org, clock: FrozenClock, agents: list[User]
) -> None:
    agent = org.actor(Role.AGENT, clock)
    later = await make(org, clock, 2, pullable_after=clock.now() + timedelta(hours=1))
    clock.advance(1)
    ready = await make(org, clock, 3)
    sold = await Status.get(organization_id=org.id, name="Sold")
    await Prospect.filter(id=ready[2].id).update(status_id=sold.id)
    taken = await distribution.pull_prospects(actor=agent, count=10, system_statuses=None)
    assert [p.id for p in taken] == [p.id for p in ready]  # the two with a pull delay stay
    await distribution.unassign_prospects(actor=agent, prospect_ids=pks(ready))
    won = await distribution.pull_prospects(actor=agent, count=10, system_statuses=[sold.system_status])
    assert [p.id for p in won] == [ready[2].id]
    clock.advance(3600)
    rest = await distribution.pull_prospects(actor=agent, count=10, system_statuses=None)
    assert [p.id for p in rest] == [p.id for p in [*later, *ready[:2]]]  # oldest first, delay over
    with pytest.raises(InvalidInput):
        await distribution.pull_prospects(actor=agent, count=0, system_statuses=None)


async def test_pull_from_another_agent_after_the_max_assignment_time(
    org: Org, clock: FrozenClock, agents: list[User]
) -> None:
    first, second = Actor(org.id, agents[0].id, Role.AGENT, clock), Actor(org.id, agents[1].id, Role.AGENT, clock)
    [timed] = await make(org, clock, 1)
    [untimed] = await make(org, clock, 1)
    status = await Status.get(id=timed.status_id)
    await Status.filter(id=status.id).update(max_assignment_seconds=3600)
    untimed_status = await Status.get(organization_id=org.id, name="Sold")
    await Prospect.filter(id=untimed.id).update(status_id=untimed_status.id)
    await Status.filter(id=untimed_status.id).update(max_assignment_seconds=None)
    await distribution.pull_prospects(actor=first, count=2, system_statuses=None)

    with pytest.raises(NotPullable, match="does not allow"):
        await distribution.pull_prospect(actor=second, prospect_id=timed.id)
    await Organization.filter(id=org.id).update(pull_from_other_agents=True)
    with pytest.raises(NotPullable, match="from its owner from"):
        await distribution.pull_prospect(actor=second, prospect_id=timed.id)
    with pytest.raises(NotPullable, match="no max assignment time"):
        await distribution.pull_prospect(actor=second, prospect_id=untimed.id)
    clock.advance(3600)
    taken = await distribution.pull_prospect(actor=second, prospect_id=timed.id)
    assert taken.owner_id == agents[1].id and taken.assigned_at == clock.now()  # the clock starts again
    status = await Status.get(id=timed.status_id)
    assert distribution.reassignable_at(taken, status) == clock.now() + timedelta(hours=1)
    with pytest.raises(NotPullable):
        await distribution.pull_prospect(actor=first, prospect_id=timed.id)
    with pytest.raises(NotFound):
        await distribution.pull_prospect(actor=second, prospect_id=999999)
    with pytest.raises(Forbidden):
        await distribution.assign_prospects(actor=first, prospect_ids=pks([timed]), user_id=None)


@pytest.mark.postgres
async def test_concurrent_pulls_and_round_robins_hand_out_each_prospect_once(
    org: Org, clock: FrozenClock, agents: list[User]
) -> None:
    admin = org.actor(Role.ADMIN, clock)
    fourth = await accounts.create_user(actor=admin, name="Agent 5", email="agent5@acme.example", role=Role.AGENT)
    pullers = [Actor(org.id, user.id, Role.AGENT, clock) for user in [*agents, fourth]]
    await make(org, clock, 100)
    pulls = await asyncio.gather(
        *(distribution.pull_prospects(actor=a, count=25, system_statuses=None) for a in pullers)
    )
    taken = [p.id for pulled in pulls for p in pulled]
    assert len(taken) == len(set(taken)) == 100
    print(f"concurrent pulls: {[len(p) for p in pulls]} of 100, {len(set(taken))} distinct")

    fresh = await make(org, clock, 100)
    manager = org.actor(Role.MANAGER, clock)
    batches = [pks(fresh[i : i + 25]) for i in range(0, 100, 25)]
    results = await asyncio.gather(
        *(distribution.assign_prospects(actor=manager, prospect_ids=b, user_id=None) for b in batches)
    )
    owners = Counter(p.owner_id for rows, _ in results for p in rows)
    print(f"concurrent round robin: {sorted(owners.values())} over {len(owners)} agents")
    assert sorted(owners.values()) == [25, 25, 25, 25]


async def test_reports_count_exactly_and_in_a_fixed_number_of_queries(
    gql: GraphQL, org: Org, clock: FrozenClock, agents: list[User], sql_queries: QueryCounter
) -> None:
    admin = org.actor(Role.ADMIN, clock)
    new_lead = await Status.get(organization_id=org.id, name="New Lead")
    sold = await Status.get(organization_id=org.id, name="Sold")
    made = await make(org, clock, 10)
    await Prospect.filter(id__in=[p.id for p in made[:4]]).update(status_id=sold.id)
    await distribution.assign_prospects(actor=admin, prospect_ids=pks(made[:6]), user_id=agents[0].id)
    await Task.create(
        organization_id=org.id,
        prospect_id=made[0].id,
        assignee_id=agents[0].id,
        kind=TaskKind.CALLBACK,
        due_at=clock.now() - timedelta(hours=1),
        created_at=clock.now(),
    )
    await Task.create(
        organization_id=org.id,
        prospect_id=made[1].id,
        assignee_id=agents[0].id,
        kind=TaskKind.CALLBACK,
        due_at=clock.now() + timedelta(hours=1),
        created_at=clock.now(),
    )

    pipeline = await reports.pipeline(actor=admin, workflow_id=None)
    rows = {row.status.name: row for row in pipeline.rows}
    assert rows["New Lead"].count == 6 and rows["Sold"].count == 4 and pipeline.total_prospects == 10
    expected = 6 * new_lead.pipeline_percent / 100 + 4 * sold.pipeline_percent / 100
    assert pipeline.weighted_total == pytest.approx(expected)
    own = await reports.pipeline(actor=admin, workflow_id=new_lead.workflow_id)
    assert {row.status.workflow_id for row in own.rows} == {new_lead.workflow_id}
    assert [row.status.id for row in own.rows] == [
        s.id for s in await Status.filter(workflow_id=new_lead.workflow_id, deleted_at=None).order_by("position", "id")
    ]
    with pytest.raises(NotFound):
        await reports.pipeline(actor=admin, workflow_id=999999)
    counts = dict(await reports.system_status_counts(admin))
    assert counts[new_lead.system_status] + counts[sold.system_status] == 10 and sum(counts.values()) == 10
    load = {row.user.id: row for row in await reports.agent_load(admin)}
    assert (load[agents[0].id].assigned, load[agents[0].id].open_tasks, load[agents[0].id].overdue_tasks) == (6, 2, 1)
    assert load[agents[1].id].assigned == 0 and set(load) == {
        u.id for u in await User.filter(organization_id=org.id, active=True)
    }
    assert [row.user.id for row in await reports.agent_load(org.actor(Role.AGENT, clock))] == [org.users[Role.AGENT].id]

    query = "{ pipelineReport { totalProspects weightedTotal rows { count weighted status { name } } } systemStatusCounts { systemStatus count } agentLoad { user { id } assigned openTasks overdueTasks } }"
    token = org.tokens[Role.MANAGER]
    await gql(token, "{ viewer { id } }")  # the token's lastUsedAt is written once
    sql_queries.count = 0
    body = await gql(token, query)
    small = sql_queries.count
    assert body["data"]["pipelineReport"]["totalProspects"] == 10
    rows_ = [
        Prospect(
            organization_id=org.id, status_id=sold.id, search_text="", created_at=clock.now(), updated_at=clock.now()
        )
        for _ in range(9990)
    ]
    await bulk.insert_returning_ids(rows_)
    await gql(token, "{ viewer { id } }")  # the token is remembered for 1 s: the insert may take longer
    sql_queries.count = 0
    body = await gql(token, query)
    assert body["data"]["pipelineReport"]["totalProspects"] == 10000
    assert sql_queries.count == small
    print(f"report queries: {small} for 10 prospects, {sql_queries.count} for 10,000")


async def test_the_max_assignment_time_is_time_in_the_status(
    gql: GraphQL, org: Org, clock: FrozenClock, agents: list[User]
) -> None:
    """Seeds 003/004: "how long a lead can stay in this status before it can be
    pulled by another agent". A lead held 3.5 days that has just entered Contact
    Made (3 days) stays with its owner 3 days more, not a moment less."""
    await Organization.filter(id=org.id).update(pull_from_other_agents=True)
    first, second = Actor(org.id, agents[0].id, Role.AGENT, clock), Actor(org.id, agents[1].id, Role.AGENT, clock)
    [lead] = await make(org, clock, 1)
    await distribution.pull_prospects(actor=first, count=1, system_statuses=None)
    clock.advance(3.5 * 86400)
    contact_made = await Status.get(organization_id=org.id, name="Contact Made")
    moved = await mutate(
        gql,
        org.tokens[Role.MANAGER],
        "setProspectStatus",
        "prospect { status { name } reassignableAt }",
        id=gids([lead])[0],
        statusId=ids.encode("Status", contact_made.id),
    )
    entered = clock.now()
    assert moved["prospect"] == {
        "status": {"name": "Contact Made"},
        "reassignableAt": (entered + timedelta(days=3)).isoformat(),
    }
    with pytest.raises(NotPullable, match="from its owner from"):
        await distribution.pull_prospect(actor=second, prospect_id=lead.id)
    clock.advance(3 * 86400 - 1)
    with pytest.raises(NotPullable):
        await distribution.pull_prospect(actor=second, prospect_id=lead.id)
    clock.advance(1)
    taken = await distribution.pull_prospect(actor=second, prospect_id=lead.id)
    assert taken.owner_id == agents[1].id
    assert distribution.reassignable_at(taken, contact_made) == clock.now() + timedelta(days=3)  # from the assignment


async def test_assigned_after_entering_the_status_counts_from_the_assignment(
    org: Org, clock: FrozenClock, agents: list[User]
) -> None:
    await Organization.filter(id=org.id).update(pull_from_other_agents=True)
    first, second = Actor(org.id, agents[0].id, Role.AGENT, clock), Actor(org.id, agents[1].id, Role.AGENT, clock)
    contact_made = await Status.get(organization_id=org.id, name="Contact Made")
    [lead] = await make(org, clock, 1)
    await prospects.set_status(
        actor=org.actor(Role.ADMIN, clock), prospect_id=lead.id, status_id=contact_made.id, note=None
    )
    entered = clock.now()
    clock.advance(2 * 86400)
    await distribution.pull_prospects(actor=first, count=1, system_statuses=None)
    held = await Prospect.get(id=lead.id)
    assert held.status_entered_at == entered
    assert distribution.reassignable_at(held, contact_made) == clock.now() + timedelta(days=3)
    clock.advance(86400)  # 3 days in the status, 1 with its owner
    with pytest.raises(NotPullable):
        await distribution.pull_prospect(actor=second, prospect_id=lead.id)
    clock.advance(2 * 86400)
    assert (await distribution.pull_prospect(actor=second, prospect_id=lead.id)).owner_id == agents[1].id


async def test_creation_and_actions_record_when_the_status_was_entered(
    org: Org, clock: FrozenClock, agents: list[User]
) -> None:
    """Creation and an action's SET_STATUS write when the prospect entered its
    status (a status set by hand: the test above); an action that leaves it in
    the status it has changes nothing."""
    admin = org.actor(Role.ADMIN, clock)
    [lead] = await make(org, clock, 1)
    assert (await Prospect.get(id=lead.id)).status_entered_at == clock.now()
    clock.advance(60)
    no_answer = await Action.get(organization_id=org.id, name="No Answer")
    await prospects.log_activity(
        actor=admin, prospect_id=lead.id, interaction=Interaction.CALL, action_id=no_answer.id, note=None
    )
    assert (await Prospect.get(id=lead.id)).status_entered_at == clock.now()  # New Lead → Attempting Contact
    clock.advance(60)
    await prospects.log_activity(
        actor=admin, prospect_id=lead.id, interaction=Interaction.CALL, action_id=no_answer.id, note=None
    )
    assert (await Prospect.get(id=lead.id)).status_entered_at == clock.now() - timedelta(seconds=60)  # stayed
