"""R12.1: the suppression list through the API (`suppressions`, `addSuppressions`,
`removeSuppression`, `node`) and `leadline suppress import`."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app import ids, presets
from app.accounts.models import Role
from app.clock import FrozenClock
from app.events import log
from app.events.models import Event, EventType
from app.prospects import service as prospects
from app.prospects import suppressions
from app.prospects.models import ChangeCause, Channel, Prospect, Suppression, SuppressionReason
from app.prospects.suppression_csv import Rejected, import_csv
from app.sequences import enrollments
from app.sequences.models import Enrollment, StageChange, StepType
from app.sequences.service import StepSpec
from app.sequences.state import Stage
from tests.conftest import GraphQL, Org, fresh_database, mutate
from tests.live_processes import LEADLINE, killed_on_exit
from tests.test_scheduler import setup

FIXTURES = Path(__file__).parent / "fixtures"

LIST = """query($first: Int, $after: String, $filter: SuppressionFilter) {
  suppressions(first: $first, after: $after, filter: $filter) {
    totalCount pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { node { id channel address reason createdBy { name } prospect { id } } } } }"""
NODE = "query($id: ID!) { node(id: $id) { __typename ... on Suppression { address reason createdBy { name } } } }"
ENTRY = "suppressions { id channel address reason createdBy { name } }"
REMOVE = "removedId"


async def _add(gql: GraphQL, token: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return await mutate(gql, token, "addSuppressions", ENTRY, entries=list(entries))


def _email(address: str, reason: str | None = None) -> dict[str, Any]:
    return {"channel": "EMAIL", "address": address, **({"reason": reason} if reason else {})}


def _addresses(body: dict[str, Any]) -> list[str]:
    return [edge["node"]["address"] for edge in body["data"]["suppressions"]["edges"]]


async def test_the_list_is_newest_first_and_paged_like_other_connections(gql: GraphQL, org: Org) -> None:
    manager = org.tokens[Role.MANAGER]
    for n in range(5):
        await _add(gql, manager, _email(f"p{n}@client.example"))

    first = await gql(manager, LIST, first=2)
    rest = await gql(manager, LIST, first=10, after=first["data"]["suppressions"]["pageInfo"]["endCursor"])
    too_many = await gql(manager, LIST, first=101)

    assert _addresses(first) == ["p4@client.example", "p3@client.example"]
    assert first["data"]["suppressions"]["totalCount"] == 5
    assert first["data"]["suppressions"]["pageInfo"]["hasNextPage"] is True
    assert _addresses(rest) == ["p2@client.example", "p1@client.example", "p0@client.example"]
    assert rest["data"]["suppressions"]["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": True,
        "endCursor": rest["data"]["suppressions"]["pageInfo"]["endCursor"],
    }
    assert too_many["data"] is None and too_many["errors"][0]["message"] == "`first` must be between 0 and 100."


async def test_each_filter_narrows_the_list_and_addresses_are_normalized_alike(gql: GraphQL, org: Org) -> None:
    manager = org.tokens[Role.MANAGER]
    await _add(
        gql,
        manager,
        _email("Foo@Example.COM", "UNSUBSCRIBED"),
        _email("bar@client.example"),
        {"channel": "SMS", "address": "+1 202-555-0143", "reason": "OPTED_OUT"},
        {"channel": "PHONE", "address": "(202) 555-0143"},
    )

    async def listed(**filter_: Any) -> list[str]:
        body = await gql(manager, LIST, filter=filter_)
        assert "errors" not in body, body
        return sorted(_addresses(body))

    assert await listed(channel="EMAIL") == ["bar@client.example", "foo@example.com"]
    assert await listed(channel="PHONE") == ["+12025550143"]
    assert await listed(address="FOO@example.com") == ["foo@example.com"]
    assert await listed(address=" foo@EXAMPLE.com ", channel="EMAIL") == ["foo@example.com"]
    assert await listed(address="(202) 555-0143") == ["+12025550143", "+12025550143"]
    assert await listed(address="+1 202 555 0143", channel="SMS") == ["+12025550143"]
    assert await listed(reasons=["UNSUBSCRIBED", "OPTED_OUT"]) == ["+12025550143", "foo@example.com"]
    assert await listed(reasons=["MANUAL"], channel="EMAIL") == ["bar@client.example"]
    assert await listed(address="nobody@client.example") == []

    for filter_, message in (
        ({"address": "not an address"}, "Not a valid phone number."),
        ({"address": "foo@", "channel": "EMAIL"}, "Not a valid email address."),
        ({"address": "foo@example.com", "channel": "SMS"}, "Not a valid phone number."),
    ):
        body = await gql(manager, LIST, filter=filter_)
        assert body["data"] is None
        assert body["errors"][0]["message"] == message
        assert body["errors"][0]["extensions"] == {"code": "INVALID_INPUT", "field": ["filter", "address"]}


async def test_an_agent_reads_and_adds_none_a_manager_adds_and_only_an_admin_removes(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    added = await _add(gql, org.tokens[Role.MANAGER], _email("ada@client.example"))
    [entry] = added["suppressions"]
    assert entry["createdBy"] == {"name": "Manager"} and entry["reason"] == "MANUAL"

    agent_list = await gql(org.tokens[Role.AGENT], LIST)
    agent_node = await gql(org.tokens[Role.AGENT], NODE, id=entry["id"])
    manager_node = await gql(org.tokens[Role.MANAGER], NODE, id=entry["id"])
    agent_add = await _add(gql, org.tokens[Role.AGENT], _email("grace@client.example"))
    removes = {
        role: await mutate(gql, org.tokens[role], "removeSuppression", REMOVE, id=entry["id"])
        for role in (Role.AGENT, Role.MANAGER)
    }

    assert agent_list["data"]["suppressions"] == {
        "totalCount": 0,
        "pageInfo": {"hasNextPage": False, "hasPreviousPage": False, "endCursor": None},
        "edges": [],
    }
    assert agent_node == {"data": {"node": None}}
    assert manager_node["data"]["node"] == {
        "__typename": "Suppression",
        "address": "ada@client.example",
        "reason": "MANUAL",
        "createdBy": {"name": "Manager"},
    }
    assert agent_add == {
        "suppressions": [],
        "errors": [
            {"code": "FORBIDDEN", "message": "Only a MANAGER or ADMIN adds to the suppression list.", "field": None}
        ],
    }
    for payload in removes.values():
        assert payload == {
            "removedId": None,
            "errors": [{"code": "FORBIDDEN", "message": "Only an ADMIN may do this.", "field": None}],
        }
    assert await Suppression.filter(organization_id=org.id).count() == 1
    removed = await mutate(gql, org.tokens[Role.ADMIN], "removeSuppression", REMOVE, id=entry["id"])
    assert removed == {"removedId": entry["id"], "errors": []}
    assert await Suppression.filter(organization_id=org.id).count() == 0


async def test_add_records_the_valid_entries_and_reports_the_others_by_index(
    gql: GraphQL, org: Org, other_org: Org
) -> None:
    kept = await _add(gql, org.tokens[Role.ADMIN], _email("kept@client.example", "COMPLAINT"))

    payload = await _add(
        gql,
        org.tokens[Role.MANAGER],
        _email("Foo@Example.COM"),
        _email("not-an-email"),
        {"channel": "SMS", "address": "+1 202-555-0143", "reason": "OPTED_OUT"},
        {"channel": "SMS", "address": "foo@example.com"},
        _email("kept@client.example", "COMPLAINT"),
        {"channel": "PHONE", "address": "12"},
        _email("foo@example.com"),
    )

    assert [(e["code"], e["field"]) for e in payload["errors"]] == [
        ("INVALID_INPUT", ["input", "entries", "1", "address"]),
        ("INVALID_INPUT", ["input", "entries", "3", "address"]),
        ("INVALID_INPUT", ["input", "entries", "5", "address"]),
    ]
    assert [(e["channel"], e["address"], e["reason"], e["createdBy"]) for e in payload["suppressions"]] == [
        ("EMAIL", "foo@example.com", "MANUAL", {"name": "Manager"}),
        ("SMS", "+12025550143", "OPTED_OUT", {"name": "Manager"}),
        ("EMAIL", "kept@client.example", "COMPLAINT", {"name": "Admin"}),  # kept as it was
    ]
    assert payload["suppressions"][2]["id"] == kept["suppressions"][0]["id"]
    rows = await Suppression.filter(organization_id=org.id).order_by("id").values_list("channel", "address", "reason")
    assert rows == [
        (Channel.EMAIL, "kept@client.example", SuppressionReason.COMPLAINT),
        (Channel.EMAIL, "foo@example.com", SuppressionReason.MANUAL),
        (Channel.SMS, "+12025550143", SuppressionReason.OPTED_OUT),
    ]
    assert not await Suppression.filter(organization_id=other_org.id).exists()


async def test_more_than_1000_entries_are_refused_whole(gql: GraphQL, org: Org) -> None:
    entries = [_email(f"p{n}@client.example") for n in range(1001)]
    payload = await _add(gql, org.tokens[Role.MANAGER], *entries)
    assert payload == {
        "suppressions": [],
        "errors": [
            {"code": "INVALID_INPUT", "message": "At most 1000 entries per call.", "field": ["input", "entries"]}
        ],
    }
    assert not await Suppression.filter(organization_id=org.id).exists()
    accepted = await _add(gql, org.tokens[Role.MANAGER], *entries[:1000])
    assert (len(accepted["suppressions"]), accepted["errors"]) == (1000, [])


async def test_adding_an_address_finishes_the_enrollments_of_every_prospect_carrying_it(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    people = [
        {"first_name": "Ada", "email": "ada@client.example", "phone": "+12025550143"},
        {"first_name": "Ada again", "phone": "(202) 555-0143"},
        {"first_name": "Grace", "email": "grace@client.example", "phone": "+12025550199"},
    ]
    steps = [StepSpec(StepType.SMS, 3600, "Hi {{ first_name }}"), StepSpec(StepType.EMAIL, 60, body="b", subject="s")]
    enrolled = await setup(org, clock, steps=steps, people=people)

    payload = await _add(gql, org.tokens[Role.MANAGER], {"channel": "SMS", "address": "+1 202-555-0143"})

    assert payload["errors"] == []
    stages = {e.prospect_id: e.stage for e in await Enrollment.filter(id__in=[e.id for e in enrolled])}
    assert [stages[e.prospect_id] for e in enrolled] == [Stage.OPTED_OUT, Stage.OPTED_OUT, Stage.STARTED]
    finishing = await StageChange.filter(to_stage=Stage.OPTED_OUT).order_by("id")
    assert [(c.enrollment_id, c.reason) for c in finishing] == [(e.id, "suppressed") for e in enrolled[:2]]
    for prospect in await Prospect.filter(id__in=[e.prospect_id for e in enrolled[:2]]):
        assert Channel.SMS in await suppressions.blocked_channels(prospect)
        assert prospect.opted_out_channels == []  # the list blocks them, not their own flags


async def test_removing_an_entry_is_audited_and_makes_the_address_contactable_again(
    gql: GraphQL, org: Org, other_org: Org, clock: FrozenClock
) -> None:
    [enrollment] = await setup(org, clock, steps=[StepSpec(StepType.EMAIL, 60, body="b", subject="s")])
    admin = org.actor(Role.ADMIN, clock)
    await prospects.opt_out(actor=admin, prospect_id=enrollment.prospect_id, channel=Channel.SMS)
    added = await _add(
        gql, org.tokens[Role.MANAGER], _email("ada@client.example"), _email("ada@client.example", "COMPLAINT")
    )
    manual, complaint = (e["id"] for e in added["suppressions"])
    foreign = await _add(gql, other_org.tokens[Role.ADMIN], _email("ada@client.example"))
    prospect = await Prospect.get(id=enrollment.prospect_id)
    assert await suppressions.blocked_channels(prospect) == {Channel.EMAIL, Channel.SMS}

    for unknown in (foreign["suppressions"][0]["id"], ids.encode("Suppression", 987654), "nonsense"):
        payload = await mutate(gql, org.tokens[Role.ADMIN], "removeSuppression", REMOVE, id=unknown)
        assert payload == {
            "removedId": None,
            "errors": [{"code": "NOT_FOUND", "message": "Suppression not found.", "field": ["input", "id"]}],
        }
    clock.advance(60)
    for entry in (manual, complaint):
        payload = await mutate(gql, org.tokens[Role.ADMIN], "removeSuppression", REMOVE, id=entry)
        assert payload == {"removedId": entry, "errors": []}
    again = await mutate(gql, org.tokens[Role.ADMIN], "removeSuppression", REMOVE, id=manual)

    assert again["errors"][0]["code"] == "NOT_FOUND"
    await prospect.refresh_from_db()
    assert prospect.opted_out_channels == ["SMS"]  # its own flags are left as they are
    assert await suppressions.blocked_channels(prospect) == {Channel.SMS}
    assert await suppressions.suppressed(org.id, [(Channel.EMAIL, "ada@client.example")]) == set()
    assert await Suppression.filter(organization_id=other_org.id).count() == 1
    events = await Event.filter(organization_id=org.id, type=EventType.SUPPRESSION_REMOVED).order_by("id")
    assert [(e.prospect_id, e.at) for e in events] == [(None, clock.now())] * 2
    assert events[0].payload == {
        "type": "SUPPRESSION_REMOVED",
        "at": clock.now().isoformat(),
        "prospectId": None,
        "suppression": {
            "id": manual,
            "channel": "EMAIL",
            "address": "ada@client.example",
            "reason": "MANUAL",
            "prospectId": None,
            "removedById": org.user_gid(Role.ADMIN),
        },
    }
    await log.sequence()
    query = "{ events(filter: {types: [SUPPRESSION_REMOVED]}) { totalCount } }"
    seen = {role: await gql(org.tokens[role], query) for role in Role}
    assert {role: body["data"]["events"]["totalCount"] for role, body in seen.items()} == {
        Role.ADMIN: 2,
        Role.MANAGER: 2,
        Role.AGENT: 0,
    }

    # Contactable again: enrolled anew in the email sequence the entries finished it in.
    await enrollment.refresh_from_db()
    assert enrollment.stage == Stage.OPTED_OUT
    restarted, errors = await enrollments.enroll(
        actor=admin, sequence_id=enrollment.sequence_id, prospect_ids=[prospect.id], activate=None
    )
    assert errors == [] and restarted[0].stage == Stage.STARTED


async def test_a_removal_rolls_back_with_its_event(
    org: Org, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = org.actor(Role.ADMIN, clock)
    [entry] = (
        await suppressions.add(actor=admin, entries=[suppressions.Wanted(Channel.SMS, "+12025550143")])
    ).suppressions

    async def failing(events: object) -> None:
        raise RuntimeError("the log is down")

    monkeypatch.setattr(log, "record", failing)
    with pytest.raises(RuntimeError):
        await suppressions.remove_entry(actor=admin, suppression_id=entry.id)
    assert await Suppression.exists(id=entry.id)


# ---- leadline suppress import ----


async def _import(org: Org, clock: FrozenClock, name: str, **options: Any) -> tuple[Any, list[Rejected]]:
    rejected: list[Rejected] = []
    result = await import_csv(
        actor=org.actor(Role.ADMIN, clock), path=FIXTURES / name, rejected=rejected.append, **options
    )
    return result, rejected


async def _rows(org: Org) -> list[tuple[str, str, str]]:
    rows = await Suppression.filter(organization_id=org.id).order_by("id").values_list("channel", "address", "reason")
    return [(Channel(c).value, a, SuppressionReason(r).value) for c, a, r in rows]


async def test_import_of_a_file_with_a_header(org: Org, clock: FrozenClock) -> None:
    result, rejected = await _import(org, clock, "suppressions_header.csv", reason=SuppressionReason.COMPLAINT)
    assert (result.added, result.present, result.rejected) == (3, 0, 2)
    assert rejected == [
        Rejected(5, "Address", "Not a valid email address."),
        Rejected(6, "Channel", "'FAX' is not one of EMAIL, SMS, PHONE."),
    ]
    assert await _rows(org) == [
        ("EMAIL", "foo@example.com", "COMPLAINT"),
        ("SMS", "+12025550143", "OPTED_OUT"),
        ("PHONE", "+12025550144", "COMPLAINT"),
    ]


async def test_import_of_a_list_without_header_infers_each_channel(org: Org, clock: FrozenClock) -> None:
    result, rejected = await _import(org, clock, "suppressions_headerless.csv")
    assert (result.added, result.present, result.rejected) == (4, 1, 1)
    assert rejected == [Rejected(7, "address", "Not a valid phone number.")]
    assert await _rows(org) == [
        ("EMAIL", "ada@client.example", "MANUAL"),
        ("SMS", "+12025550145", "MANUAL"),
        ("SMS", "+12025550146", "MANUAL"),
        ("EMAIL", "grace@client.example", "MANUAL"),
    ]
    again, _ = await _import(org, clock, "suppressions_headerless.csv")
    assert (again.added, again.present, again.rejected) == (0, 5, 1)


async def test_import_of_a_semicolon_file_with_synonym_headers(org: Org, clock: FrozenClock) -> None:
    result, rejected = await _import(org, clock, "suppressions_semicolon.csv")
    assert (result.added, result.present, result.rejected, rejected) == (4, 0, 0, [])
    assert await _rows(org) == [
        ("EMAIL", "jean@client.example", "COMPLAINT"),
        ("SMS", "+33612345678", "COMPLAINT"),
        ("EMAIL", "marie@client.example", "MANUAL"),
        ("SMS", "+12025550147", "HARD_BOUNCE"),
    ]


async def test_import_reports_bad_lines_in_order_and_keeps_the_good_ones(org: Org, clock: FrozenClock) -> None:
    result, rejected = await _import(org, clock, "suppressions_bad_lines.csv")
    assert (result.added, result.present, result.rejected) == (2, 0, 4)
    assert rejected == [
        Rejected(3, "email", "No address on this line."),
        Rejected(4, "email", "Not a valid email address."),
        Rejected(5, "channel", "'SMTP' is not one of EMAIL, SMS, PHONE."),
        Rejected(7, "file", "unreadable from here on (not UTF-8 text)."),
    ]
    assert await _rows(org) == [("EMAIL", "ok@client.example", "MANUAL"), ("EMAIL", "four@client.example", "MANUAL")]


async def test_import_with_a_channel_takes_the_address_of_that_channel(org: Org, clock: FrozenClock) -> None:
    result, rejected = await _import(org, clock, "suppressions_semicolon.csv", channel=Channel.PHONE)
    assert (result.added, result.present, result.rejected) == (2, 0, 1)
    assert rejected == [Rejected(3, "E-Mail", "Not a valid phone number.")]  # marie has no number
    assert await _rows(org) == [("PHONE", "+33612345678", "COMPLAINT"), ("PHONE", "+12025550147", "HARD_BOUNCE")]


async def test_import_refuses_a_file_without_addresses_before_writing(org: Org, clock: FrozenClock) -> None:
    from app.errors import InvalidInput

    with pytest.raises(InvalidInput, match="the first line has 'Name', 'Company'"):
        await _import(org, clock, "suppressions_no_address_column.csv")
    assert await _rows(org) == []


# The command itself, as a process on a database of its own.


async def _leadline(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        LEADLINE, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with killed_on_exit(process), asyncio.timeout(300):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def command_env(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    async with fresh_database(file=tmp_path / "cli.sqlite3") as url:
        env = {**os.environ, "LEADLINE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": url}
        assert (await _leadline(env, "migrate"))[0] == 0
        yield env


async def test_the_command_imports_fixture_files_and_a_large_file_in_batches(
    command_env: dict[str, str], tmp_path: Path
) -> None:
    _, out, _ = await _leadline(command_env, "org", "create", "Initech", "--admin-email", "bill@initech.example")
    org = json.loads(out)["organization_id"]

    results = {}
    for name in ("header", "headerless", "semicolon", "bad_lines"):
        code, out, err = await _leadline(
            command_env, "suppress", "import", str(FIXTURES / f"suppressions_{name}.csv"), "--org", org
        )
        assert code == 0, err
        results[name] = (json.loads(out), [line for line in err.splitlines() if line.startswith("line ")])
    big = tmp_path / "big.csv"
    big.write_text("email\n" + "".join(f"lead{n}@client.example\n" for n in range(2500)) + "nope\n")
    code, out, err = await _leadline(
        command_env, "suppress", "import", str(big), "--org", org, "--reason", "unsubscribed"
    )
    refused, _, refusal = await _leadline(
        command_env, "suppress", "import", str(FIXTURES / "suppressions_no_address_column.csv"), "--org", org
    )

    assert results["header"] == (
        {"added": 3, "already_present": 0, "rejected": 2},
        ["line 5: Address: Not a valid email address.", "line 6: Channel: 'FAX' is not one of EMAIL, SMS, PHONE."],
    )
    assert results["headerless"] == (
        {"added": 4, "already_present": 1, "rejected": 1},
        ["line 7: address: Not a valid phone number."],
    )
    assert results["semicolon"][0] == {"added": 4, "already_present": 0, "rejected": 0}
    assert results["bad_lines"][1][-1] == "line 7: file: unreadable from here on (not UTF-8 text)."
    assert code == 0 and json.loads(out) == {"added": 2500, "already_present": 0, "rejected": 1}
    assert "line 2502: email: Not a valid email address." in err
    assert "suppressing" in err  # the progress bar
    assert refused != 0 and "No column of addresses" in refusal


async def test_an_entry_names_its_prospect_while_that_prospect_exists(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    admin = org.actor(Role.ADMIN, clock)
    await presets.apply(actor=admin, name="lead-workflow")
    created, _ = await prospects.create_prospects(actor=admin, inputs=[{"first_name": "Ada", "phone": "+12025550143"}])
    [entry] = await suppressions.record(
        org.id,
        [suppressions.Entry(Channel.SMS, "+12025550143", SuppressionReason.OPTED_OUT)],
        actor=admin,
        cause=ChangeCause.INBOUND,
        prospect_id=created[0].id,
        enrollment_reason="opted_out",
    )
    query = "query($id: ID!) { node(id: $id) { ... on Suppression { reason prospect { id } createdBy { name } } } }"
    entry_id = ids.encode("Suppression", entry.id)

    before = await gql(org.tokens[Role.MANAGER], query, id=entry_id)
    await prospects.delete_prospect(actor=admin, prospect_id=created[0].id)
    after = await gql(org.tokens[Role.MANAGER], query, id=entry_id)

    assert before["data"]["node"] == {
        "reason": "OPTED_OUT",
        "prospect": {"id": ids.encode("Prospect", created[0].id)},
        "createdBy": None,
    }
    assert after["data"]["node"] == {"reason": "OPTED_OUT", "prospect": None, "createdBy": None}


async def test_import_of_lines_with_two_addresses_never_overfills_a_batch(
    org: Org, clock: FrozenClock, tmp_path: Path
) -> None:
    """999 entries, then a line with two: the batch is sent before it would pass 1,000."""
    path = tmp_path / "both.csv"
    lines = ["email,phone", "solo@client.example,"]
    lines += [f"p{i}@client.example,+1212200{i:04d}" for i in range(500)]
    path.write_text("\n".join(lines) + "\n")
    result = await import_csv(actor=org.actor(Role.ADMIN, clock), path=path)
    assert (result.added, result.present, result.rejected) == (1001, 0, 0)
    assert await Suppression.filter(organization_id=org.id).count() == 1001
