"""What a page of prospects costs (issue 24): its resolver loads what the selection
asks of every row in one batch per kind, so each row's fields answer at once, with
no task and no query a row, as they answer alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from app.accounts.models import Role
from app.clock import FrozenClock
from app.prospects import service as prospects
from tests.conftest import GraphQL, Org
from tests.factories import populate

ROW = """
fragment Row on Prospect {
  id firstName email systemStatus reassignableAt blockedChannels
  status { id name }
  owner { id name }
  ... on Prospect {
    enrollments(first: 5) { edges { node { id stage } } }
    activities { edges { node { id note } } }
    statusHistory { edges { node { id cause } } }
    tasks(first: 1) { edges { node { id kind } } pageInfo { hasNextPage } }
    messages { edges { node { id } } }
  }
}
"""
PAGE = "query Page($first: Int) { prospects(first: $first) { edges { node { ...Row } } } }" + ROW
NODE = "query One($id: ID!) { node(id: $id) { ...Row } }" + ROW


async def _prospects(org: Org, clock: FrozenClock, count: int) -> None:
    """populate's prospect (an enrollment, an activity, a task, a message...) and
    ``count`` more, owned by the agent or by no one."""
    await populate(org, clock)
    created, errors = await prospects.create_prospects(
        actor=org.actor(Role.ADMIN, clock),
        inputs=[
            {"first_name": f"P{n}", "email": f"p{n}@client.example", "owner_id": org.users[Role.AGENT].id}
            if n % 2
            else {"first_name": f"P{n}"}
            for n in range(count)
        ],
    )
    assert not errors and len(created) == count


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


async def test_a_page_makes_no_task_a_row(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    await _prospects(org, clock, 24)
    token = org.tokens[Role.ADMIN]
    made = {}
    for first in (2, 25):
        with tasks_made() as count:
            body = await gql(token, PAGE, first=first)
        assert "errors" not in body, body
        assert len(body["data"]["prospects"]["edges"]) == first
        made[first] = count[0]
    # A few tasks whatever the page's size (its batches; on PostgreSQL the pool's
    # returns vary). Before, graphql-core awaited the fields of each row in a task of
    # their own: 23 more rows, 23 more tasks.
    assert made[25] < made[2] + 5, made


@pytest.mark.parametrize("role", [Role.ADMIN, Role.AGENT])
async def test_a_page_answers_each_row_as_the_row_alone_does(
    gql: GraphQL, org: Org, clock: FrozenClock, role: Role
) -> None:
    await _prospects(org, clock, 6)
    token = org.tokens[role]
    page = await gql(token, PAGE, first=10)
    assert "errors" not in page, page
    rows = [edge["node"] for edge in page["data"]["prospects"]["edges"]]
    assert rows[0]["firstName"] == "Pat"
    assert rows[0]["enrollments"]["edges"] and rows[0]["activities"]["edges"] and rows[0]["messages"]["edges"]
    assert {row["owner"]["name"] if row["owner"] else None for row in rows} == {None, "Agent"}
    for row in rows:
        alone = await gql(token, NODE, id=row["id"])
        assert "errors" not in alone, alone
        assert alone["data"]["node"] == row
