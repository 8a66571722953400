"""What a page of prospects costs (issue 24): its resolver loads what the selection
asks of every row in one batch per kind, so each row's fields answer at once, with
no task and no query a row; and fields that need none of Strawberry's wrapper are
resolved by graphql-core directly (schema.direct). Either way a field answers as
it does alone."""

from __future__ import annotations

import asyncio
import enum
import gc
from collections.abc import AsyncGenerator
from typing import Any

import pytest
import strawberry
from strawberry.extensions import SchemaExtension

from app.accounts.models import Role
from app.clock import FrozenClock
from app.prospects import service as prospects
from app.prospects.models import Prospect, Task, TaskKind
from schema import direct
from schema.build import build_schema
from tests.conftest import GraphQL, Org, tasks_made
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


async def rows_as_alone(gql: GraphQL, token: str, query: str, connection: str, one: str) -> list[dict[str, Any]]:
    """The rows of a page, after checking that each equals the same row read alone (node)."""
    page = await gql(token, query, first=10)
    assert "errors" not in page, page
    rows: list[dict[str, Any]] = [edge["node"] for edge in page["data"][connection]["edges"]]
    for row in rows:
        alone = await gql(token, one, id=row["id"])
        assert "errors" not in alone, alone
        assert alone["data"]["node"] == row
    return rows


@pytest.mark.parametrize("role", [Role.ADMIN, Role.AGENT])
async def test_a_page_answers_each_row_as_the_row_alone_does(
    gql: GraphQL, org: Org, clock: FrozenClock, role: Role
) -> None:
    await _prospects(org, clock, 6)
    rows = await rows_as_alone(gql, org.tokens[role], PAGE, "prospects", NODE)
    assert rows[0]["firstName"] == "Pat"
    assert rows[0]["enrollments"]["edges"] and rows[0]["activities"]["edges"] and rows[0]["messages"]["edges"]
    assert {row["owner"]["name"] if row["owner"] else None for row in rows} == {None, "Agent"}


TASK = """
fragment Task on Task {
  id kind note
  prospect { id firstName email }
  assignee { id name }
  enrollment { id stage }
  step { id }
}
"""
TASKS = "query Tasks($first: Int) { tasks(first: $first) { edges { node { ...Task } } } }" + TASK
ONE_TASK = "query One($id: ID!) { node(id: $id) { ...Task } }" + TASK


async def _tasks(org: Org, clock: FrozenClock, count: int) -> None:
    """populate's callback task (an enrollment's prospect) and one task for each of
    ``count`` more prospects, assigned to the agent or to no one."""
    await _prospects(org, clock, count)
    rows = await Prospect.filter(organization_id=org.id, first_name__startswith="P").order_by("id")
    for n, row in enumerate(rows):
        await Task.create(
            organization_id=org.id,
            prospect_id=row.id,
            assignee_id=org.users[Role.AGENT].id if n % 2 else None,
            kind=TaskKind.CALLBACK,
            due_at=clock.now(),
            created_at=clock.now(),
        )


@pytest.mark.parametrize("connection", ["prospects", "tasks"])
async def test_a_page_makes_no_task_a_row(gql: GraphQL, org: Org, clock: FrozenClock, connection: str) -> None:
    """A page of 25 makes a few tasks more than a page of 2 at most (its batches; on
    PostgreSQL the pool's returns vary), not one a row: before, graphql-core awaited
    the fields of each row in a task of their own (23 more rows, 23 more tasks)."""
    make, query = (_prospects, PAGE) if connection == "prospects" else (_tasks, TASKS)
    await make(org, clock, 24)
    made = {}
    for first in (2, 25):
        with tasks_made() as count:
            body = await gql(org.tokens[Role.ADMIN], query, first=first)
        assert "errors" not in body, body
        assert len(body["data"][connection]["edges"]) == first
        made[first] = count[0]
    assert made[25] < made[2] + 5, made


@pytest.mark.parametrize("role", [Role.ADMIN, Role.AGENT])
async def test_a_tasks_page_answers_each_task_as_the_task_alone_does(
    gql: GraphQL, org: Org, clock: FrozenClock, role: Role
) -> None:
    await _tasks(org, clock, 5)
    rows = await rows_as_alone(gql, org.tokens[role], TASKS, "tasks", ONE_TASK)
    assert {row["assignee"]["name"] if row["assignee"] else None for row in rows} == {None, "Agent"}


@strawberry.type
class _Row:
    value: int
    hidden: strawberry.Private[int] = 0

    @strawberry.field
    def doubled(self) -> int:
        return self.value * 2

    @strawberry.field
    def scaled(self, info: strawberry.Info, by_factor: int = 3, label: str | None = None) -> str:
        return f"{label or 'x'}{self.value * by_factor}"


@strawberry.enum
class _Sign(enum.Enum):
    PLUS = "PLUS"


@strawberry.type
class _Query:
    @strawberry.field
    def rows(self) -> list[_Row]:
        return [_Row(value=1), _Row(value=2)]

    @strawberry.field
    def signed(self, sign: _Sign) -> str:
        return sign.value


def test_direct_resolvers_take_the_arguments_given_and_the_defaults_of_the_rest() -> None:
    schema = strawberry.Schema(query=_Query)
    assert direct.install(schema) == 4  # value, doubled, scaled, rows; not signed (an enum argument)
    assert direct.direct(schema, schema._schema.query_type.fields["signed"]) is None  # type: ignore[union-attr]
    result = schema.execute_sync(
        '{ rows { value doubled scaled a: scaled(byFactor: 10) b: scaled(label: "y") } signed(sign: PLUS) }'
    )
    assert result.errors is None, result.errors
    assert result.data == {
        "rows": [
            {"value": 1, "doubled": 2, "scaled": "x3", "a": "x10", "b": "y3"},
            {"value": 2, "doubled": 4, "scaled": "x6", "a": "x20", "b": "y6"},
        ],
        "signed": "PLUS",
    }


def test_leadlines_plain_fields_are_resolved_directly() -> None:
    schema = build_schema()
    prospect = schema._schema.type_map["Prospect"].fields  # type: ignore[attr-defined]
    for name in ("firstName", "status", "owner", "enrollments"):
        assert prospect[name].resolve.__module__ == "schema.direct", name
    # An input argument needs Strawberry's conversion.
    query = schema._schema.query_type.fields  # type: ignore[union-attr]
    assert query["prospects"].resolve.__module__ != "schema.direct"


@strawberry.interface
class _Named:
    name: str


@strawberry.type
class _Buddy(_Named):
    """A type with an interface: Strawberry gives it an ``is_type_of``."""

    @strawberry.field
    def must(self) -> str:
        return None  # type: ignore[return-value]  # a bug: null for a non-null field


@strawberry.type
class _Leaves:
    name: str
    nickname: str | None
    sign: _Sign
    big: int | None
    # Plain attributes of object and list types (the short way without a resolve info).
    pair: list[_Leaves] = strawberry.field(default_factory=list)
    maybe_pair: list[_Leaves | None] | None = None
    buddy: _Buddy | None = None
    must_buddy: _Buddy = None  # type: ignore[assignment]  # a bug: null for a non-null object
    wrong_buddy: _Buddy | None = None

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()

    @strawberry.field
    def must(self) -> str:
        return None  # type: ignore[return-value]  # a bug: null for a non-null field

    @strawberry.field
    def broken(self) -> str | None:
        raise ValueError("no value")

    @strawberry.field
    def twin(self) -> _Leaves | None:
        return self if self.nickname else None

    @strawberry.field
    def must_twin(self) -> _Leaves:
        return None  # type: ignore[return-value]  # a bug: null for a non-null object


@strawberry.type
class _LeafQuery:
    @strawberry.field
    def leaves(self) -> list[_Leaves | None]:
        inner = _Leaves(name="c", nickname="sea", sign=_Sign.PLUS, big=1)
        return [
            _Leaves(
                name="a",
                nickname=None,
                sign=_Sign.PLUS,
                big=2**40,
                pair=[inner, inner],
                maybe_pair=[None, inner],
                buddy=_Buddy(name="bud"),
                wrong_buddy=inner,  # type: ignore[arg-type]  # a bug: an object of another type
            ),
            _Leaves(name="b", nickname="bee", sign=_Sign.PLUS, big=7, must_buddy=_Buddy(name="pal")),
        ]

    @strawberry.field
    def many(self) -> list[_Leaves | None]:
        """A list long enough to be completed in slices: rows, nulls, rows with a list."""
        return [
            None
            if n % 7 == 3
            else _Leaves(name=f"n{n}", nickname=f"k{n}" if n % 2 else None, sign=_Sign.PLUS, big=n, pair=[])
            for n in range(30)
        ]


def test_the_short_ways_answer_as_graphql_cores_own_would(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values, nulls, a null for a non-null field, a raised error and a value out of
    the type's range: each as graphql-core's own way answers it, with the same errors."""
    short = strawberry.Schema(query=_LeafQuery, execution_context_class=direct.Executor)
    direct.install(short)
    infos: list[str] = []
    build = direct.Executor.build_resolve_info

    def counted(self: direct.Executor, field_def: Any, field_nodes: Any, *args: Any) -> Any:
        infos.append(field_nodes[0].name.value)
        return build(self, field_def, field_nodes, *args)

    monkeypatch.setattr(direct.Executor, "build_resolve_info", counted)
    for query, failing in (
        ("{ leaves { name nickname sign shout big broken __typename } }", True),
        ("{ leaves { name must } }", True),  # each row nulled by its must
        ("{ leaves { twin { name twin { shout } } } }", False),  # an object, or null
        ("{ leaves { name mustTwin { name } } }", True),
        ("{ leaves { pair { name twin { name } } maybePair { name } buddy { name } } }", False),
        ("{ leaves { name pair { must } } }", True),  # a non-null error inside a list of non-null items
        ("{ leaves { maybePair { name must } } }", True),  # ... of nullable items
        ("{ leaves { buddy { name must } } }", True),
        ("{ leaves { name mustBuddy { name } } }", True),
        ("{ leaves { name wrongBuddy { name } } }", True),  # fails its is_type_of
        ("{ leaves { pair @include(if: true) { name } buddy @skip(if: false) { name } } }", False),
    ):
        usual = strawberry.Schema(query=_LeafQuery).execute_sync(query)
        answer = short.execute_sync(query)
        assert answer.data == usual.data
        assert [(e.message, e.path) for e in answer.errors or []] == [(e.message, e.path) for e in usual.errors or []]
        assert bool(answer.errors) is failing
    assert short.execute_sync("{ leaves { name nickname sign shout big broken } }").data == {
        "leaves": [
            {"name": "a", "nickname": None, "sign": "PLUS", "shout": "A", "big": None, "broken": None},
            {"name": "b", "nickname": "bee", "sign": "PLUS", "shout": "B", "big": 7, "broken": None},
        ]
    }
    assert "leaves" in infos and "broken" in infos  # graphql-core's way: an object, an error
    assert "name" not in infos and "shout" not in infos and "sign" not in infos  # the short way
    infos.clear()
    short.execute_sync("{ leaves { pair { name } maybePair { name } buddy { name } mustBuddy { name } } }")
    # graphql-core's way for the nulls (a's mustBuddy, b's maybePair and buddy); the values the short way.
    assert infos == ["leaves", "mustBuddy", "maybePair", "buddy"]


async def test_a_long_list_completed_in_slices_answers_as_graphql_cores_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every item a slice of its own: values, nulls, errors inside nullable and
    non-null items, as graphql-core's own completion answers them."""
    monkeypatch.setattr(direct, "SLICE", 0.0)
    short = strawberry.Schema(query=_LeafQuery, execution_context_class=direct.Executor)
    direct.install(short)
    for query, failing in (
        ("{ many { name nickname big twin { name } pair { name } } }", False),
        ("{ many { name broken } }", True),  # an error in a nullable field of each item
        ("{ many { name must } }", True),  # a null for a non-null field: the item is nulled
        ("{ many { name mustBuddy { name } } leaves { name } }", True),
    ):
        usual = await strawberry.Schema(query=_LeafQuery).execute(query)
        answer = await short.execute(query)
        assert answer.data == usual.data
        assert [(e.message, e.path) for e in answer.errors or []] == [(e.message, e.path) for e in usual.errors or []]
        assert bool(answer.errors) is failing


@pytest.mark.parametrize("sliced", [True, False])
async def test_other_work_runs_between_the_slices_of_a_long_list(monkeypatch: pytest.MonkeyPatch, sliced: bool) -> None:
    if sliced:
        monkeypatch.setattr(direct, "SLICE", 0.0)
    else:
        monkeypatch.setattr(direct, "SHORT_LIST", 1_000)
    schema = strawberry.Schema(query=_LeafQuery, execution_context_class=direct.Executor)
    direct.install(schema)
    ran: list[str] = []
    asyncio.get_running_loop().call_soon(ran.append, "other")
    answer = await schema.execute("{ many { name } }")
    ran.append("done")
    assert not answer.errors
    assert ran == (["other", "done"] if sliced else ["done"])  # unsliced, nothing else ran meanwhile


def test_an_extension_that_resolves_every_field_sees_the_leaves_too() -> None:
    class Shouting(SchemaExtension):
        def resolve(self, _next: Any, root: Any, info: strawberry.Info, *args: Any, **kwargs: Any) -> Any:
            value = _next(root, info, *args, **kwargs)
            return value.upper() if isinstance(value, str) else value

    schema = strawberry.Schema(query=_LeafQuery, extensions=[Shouting], execution_context_class=direct.Executor)
    direct.install(schema)
    assert schema.execute_sync("{ leaves { name } }").data == {"leaves": [{"name": "A"}, {"name": "B"}]}


def _ours(thing: object) -> bool:
    return isinstance(thing, type) or type(thing).__module__.partition(".")[0] in {
        "app",
        "schema",
        "strawberry",
        "graphql",
        "tortoise",
        "starlette",
    }


async def test_a_request_leaves_no_cycle_for_the_collector(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    """What a request made goes by reference counting as it ends. A cycle through
    graphql-core's executor, or a loader bound to the request's loaders, kept its
    context, loaders and rows for Python's cyclic collector, whose passes then
    took ~30 ms about once a second under 20 clients; Strawberry's depth and alias
    limiters made two classes a request."""
    await _prospects(org, clock, 5)
    token = org.tokens[Role.ADMIN]
    page = await gql(token, PAGE, first=10)
    prospect = page["data"]["prospects"]["edges"][0]["node"]["id"]
    rename = 'mutation($id: ID!) { updateProspect(input: {id: $id, title: "CEO"}) { prospect { title } } }'
    for query, variables in ((PAGE, {"first": 10}), (rename, {"id": prospect})):
        await gql(token, query, **variables)  # what the first request caches is not garbage
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            body = await gql(token, query, **variables)
            gc.collect()
            left = [type(thing).__qualname__ for thing in gc.garbage if _ours(thing)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
        assert "errors" not in body, body
        assert left == [], query


@strawberry.type
class _Events:
    @strawberry.subscription
    async def leaves(self, count: int) -> AsyncGenerator[_Leaves, None]:
        for n in range(count):
            yield _Leaves(name=f"n{n}", nickname=None, sign=_Sign.PLUS, big=n)


async def test_a_long_subscription_keeps_no_memo_of_each_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each event's root fields are collected afresh: memos keyed by what was
    collected (graphql-core's sub-fields and stream usages, the executor's plans)
    gained entries every event while they were shared with the subscription's
    executor, for as long as it lived."""
    schema = strawberry.Schema(query=_LeafQuery, subscription=_Events, execution_context_class=direct.Executor)
    direct.install(schema)
    made: list[direct.Executor] = []
    init = direct.Executor.__init__

    def recorded(self: direct.Executor, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(direct.Executor, "__init__", recorded)
    events = await schema.subscribe("subscription { leaves(count: 50) { name shout sign } }")
    assert isinstance(events, AsyncGenerator)
    names = [result.data["leaves"]["name"] async for result in events if result.data]
    assert names == [f"n{n}" for n in range(50)]
    [subscription] = made
    assert len(subscription._relevant_sub_fields) == len(subscription.plans) == 0
