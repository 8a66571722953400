"""The `events` query (R10.1): oldest first by cursor, resumable, filtered, and an
AGENT sees only the events of prospects it may work."""

from __future__ import annotations

from app import ids
from app.accounts.models import Role
from app.clock import FrozenClock
from app.events import log
from app.events.models import Event
from app.prospects import service as prospects
from tests.conftest import GraphQL, Org, QueryCounter

PAGE = """query($first: Int, $after: String, $filter: EventFilter) {
  events(first: $first, after: $after, filter: $filter) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { cursor type prospect { firstName } payload } }
  }
}"""


async def _people(org: Org, clock: FrozenClock) -> list[str]:
    from app import presets

    admin = org.actor(Role.ADMIN, clock)
    await presets.apply(actor=admin, name="lead-workflow")
    made, _ = await prospects.create_prospects(
        actor=admin,
        inputs=[
            {"first_name": "Mine", "owner_id": org.users[Role.AGENT].id},
            {"first_name": "Theirs", "owner_id": org.users[Role.MANAGER].id},
        ],
    )
    await prospects.update_prospect(actor=admin, prospect_id=made[0].id, changes={"title": "CTO"})
    return [ids.encode("Prospect", p.id) for p in made]


async def test_pages_resume_after_a_cursor_and_only_numbered_events_show(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    mine, theirs = await _people(org, clock)
    token = org.tokens[Role.MANAGER]
    assert (await gql(token, PAGE))["data"]["events"]["totalCount"] == 0  # not numbered yet
    await log.sequence()
    assert (await gql(token, PAGE))["data"]["events"]["totalCount"] == 5  # with two ASSIGNMENT_CHANGED
    kinds = {"types": ["PROSPECT_CREATED", "PROSPECT_UPDATED"]}
    first = (await gql(token, PAGE, first=2, filter=kinds))["data"]["events"]
    assert first["totalCount"] == 3 and first["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["type"] for e in first["edges"]] == ["PROSPECT_CREATED", "PROSPECT_CREATED"]
    assert all(e["cursor"] == e["node"]["cursor"] for e in first["edges"])
    rest = (await gql(token, PAGE, first=2, after=first["pageInfo"]["endCursor"], filter=kinds))["data"]["events"]
    [updated] = rest["edges"]
    assert updated["node"]["type"] == "PROSPECT_UPDATED" and rest["pageInfo"]["hasNextPage"] is False
    assert updated["node"]["payload"]["fields"] == ["title"] and updated["node"]["payload"]["prospectId"] == mine
    assert updated["node"]["prospect"] == {"firstName": "Mine"}

    only = await gql(token, PAGE, filter={"types": ["PROSPECT_UPDATED"]})
    theirs_only = await gql(token, PAGE, filter={"prospectId": theirs})
    assert only["data"]["events"]["totalCount"] == 1
    assert [
        (e["node"]["type"], e["node"]["prospect"]["firstName"]) for e in theirs_only["data"]["events"]["edges"]
    ] == [
        ("PROSPECT_CREATED", "Theirs"),
        ("ASSIGNMENT_CHANGED", "Theirs"),
    ]
    bad = await gql(token, PAGE, after="not-a-cursor")
    assert bad["errors"][0]["message"] == "`after` is not a cursor from this connection."


async def test_an_agent_sees_the_events_of_its_prospects_only(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    mine, theirs = await _people(org, clock)
    await log.sequence()
    seen = (await gql(org.tokens[Role.AGENT], PAGE))["data"]["events"]
    assert {e["node"]["payload"]["prospectId"] for e in seen["edges"]} == {mine}
    foreign = await Event.get(prospect_id=ids.decode_as("Prospect", theirs), type="PROSPECT_CREATED")
    node = await gql(
        org.tokens[Role.AGENT], "query($id: ID!) { node(id: $id) { id } }", id=ids.encode("Event", foreign.id)
    )
    assert node["data"]["node"] is None


SUBJECTS = """query($first: Int) { events(first: $first) { edges { node {
  type prospect { id } statusChange { id } stageChange { id } message { id } task { id }
} } } }"""


async def test_a_page_of_events_costs_the_same_queries_for_one_event_or_many(
    gql: GraphQL, org: Org, clock: FrozenClock, sql_queries: QueryCounter
) -> None:
    from tests.test_scheduler import setup

    people = [{"first_name": f"P{i}", "email": f"p{i}@client.example"} for i in range(5)]
    await setup(org, clock, people=people)  # prospects created and enrolled: events with subjects
    await log.sequence()
    costs = []
    for first in (6, 100):  # 6: five PROSPECT_CREATED and one STAGE_CHANGED, as on the full page
        await gql(org.tokens[Role.MANAGER], "{ viewer { id } }")  # the token's lastUsedAt is written first
        sql_queries.count = 0
        body = await gql(org.tokens[Role.MANAGER], SUBJECTS, first=first)
        assert "errors" not in body
        costs.append(sql_queries.count)
    assert len(body["data"]["events"]["edges"]) == 10 and costs[0] == costs[1]
