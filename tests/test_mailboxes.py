"""Mailboxes (contract part 60): who manages them, what they accept, that their
addresses are each one organization's, and that an enrollment's emails go out
from the right one (owner's, else shared, else emailFrom) as a real SMTP server
receives them, through SMTP_URL's pool or the mailbox's own server's."""

from __future__ import annotations

import asyncio
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from tortoise import connections

from app import sealing
from app.accounts import service as accounts
from app.accounts.models import IdentityKind, Organization, Role, SendingIdentity
from app.clock import FrozenClock
from app.config import Settings
from app.errors import Conflict
from app.messaging import email_routing, mailboxes, sending
from app.messaging.models import Mailbox, Message, MessageState
from app.messaging.transports import SmtpPools
from app.sequences import scheduler
from app.sequences.models import StepType
from app.sequences.service import StepSpec
from tests.conftest import GraphQL, Org, make_org, mutate
from tests.smtp_sink import smtp_sink
from tests.test_scheduler import setup

FIELDS = "id address displayName user { id } dailyLimit rampUpStart rampUpPerDay perDomainHourlyLimit timeZone hasOwnSmtp active"
MAILBOXES = "query { mailboxes { id address user { id } } }"
EMAIL_STEP = [StepSpec(StepType.EMAIL, 0, body="Hello {{ first_name }}", subject="Hi {{ first_name }}")]


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "data"), **env})


async def _create(gql: GraphQL, org: Org, role: Role = Role.MANAGER, **input_: Any) -> dict[str, Any]:
    return await mutate(gql, org.tokens[role], "createMailbox", f"mailbox {{ {FIELDS} }}", **input_)


# Managing them


async def test_managers_create_update_and_delete_mailboxes_and_an_agent_sees_its_own(gql: GraphQL, org: Org) -> None:
    agent = org.user_gid(Role.AGENT)
    created = await _create(
        gql, org, address="Rep@Acme.Example", displayName="Ada Rep", userId=agent, rampUpStart=20, rampUpPerDay=10
    )
    shared = await _create(gql, org, Role.ADMIN, address="team@acme.example", timeZone="Europe/Paris")

    assert created["errors"] == [] and shared["errors"] == []
    assert created["mailbox"] | {"id": None} == {
        "id": None,
        "address": "rep@acme.example",
        "displayName": "Ada Rep",
        "user": {"id": agent},
        "dailyLimit": 200,
        "rampUpStart": 20,
        "rampUpPerDay": 10,
        "perDomainHourlyLimit": None,
        "timeZone": "UTC",
        "hasOwnSmtp": False,
        "active": True,
    }
    assert shared["mailbox"]["timeZone"] == "Europe/Paris" and shared["mailbox"]["user"] is None
    seen_by_agent = await gql(org.tokens[Role.AGENT], MAILBOXES)
    assert [m["address"] for m in seen_by_agent["data"]["mailboxes"]] == ["rep@acme.example"]
    seen_by_manager = await gql(org.tokens[Role.MANAGER], MAILBOXES)
    assert [m["address"] for m in seen_by_manager["data"]["mailboxes"]] == ["rep@acme.example", "team@acme.example"]

    box = created["mailbox"]["id"]
    updated = await mutate(
        gql, org.tokens[Role.MANAGER], "updateMailbox", "mailbox { displayName dailyLimit active }",
        id=box, displayName="Ada", dailyLimit=500, active=False,
    )  # fmt: skip
    assert updated == {"mailbox": {"displayName": "Ada", "dailyLimit": 500, "active": False}, "errors": []}

    deleted = await mutate(gql, org.tokens[Role.MANAGER], "deleteMailbox", "deletedId", id=box)
    assert deleted == {"deletedId": box, "errors": []}
    assert await Mailbox.filter(organization_id=org.id).values_list("address", flat=True) == ["team@acme.example"]
    assert not await SendingIdentity.exists(address="rep@acme.example")


async def test_an_agent_may_not_manage_mailboxes(gql: GraphQL, org: Org) -> None:
    shared = await _create(gql, org, address="team@acme.example")
    box = shared["mailbox"]["id"]
    agent = org.tokens[Role.AGENT]

    refusals = [
        await mutate(gql, agent, "createMailbox", "mailbox { id }", address="me@acme.example"),
        await mutate(gql, agent, "updateMailbox", "mailbox { id }", id=box, dailyLimit=5),
        await mutate(gql, agent, "deleteMailbox", "deletedId", id=box),
    ]

    assert [r["errors"][0]["code"] for r in refusals] == ["FORBIDDEN"] * 3
    assert await Mailbox.filter(organization_id=org.id).values_list("address", "daily_limit") == [
        ("team@acme.example", 200)
    ]


@pytest.mark.parametrize(
    ("input_", "code", "field"),
    [
        ({"address": "not an address"}, "INVALID_INPUT", "address"),
        ({"address": "x@localhost"}, "INVALID_INPUT", "address"),
        ({"displayName": "Ada\r\nBcc: victim@example.com"}, "INVALID_INPUT", "displayName"),
        ({"displayName": "A" * 201}, "INVALID_INPUT", "displayName"),
        ({"dailyLimit": 0}, "INVALID_INPUT", "dailyLimit"),
        ({"dailyLimit": 100_001}, "INVALID_INPUT", "dailyLimit"),
        ({"rampUpStart": 300, "rampUpPerDay": 10}, "INVALID_INPUT", "rampUpStart"),
        ({"rampUpStart": 20}, "INVALID_INPUT", "rampUpPerDay"),
        ({"rampUpPerDay": 0, "rampUpStart": 10}, "INVALID_INPUT", "rampUpPerDay"),
        ({"perDomainHourlyLimit": -1}, "INVALID_INPUT", "perDomainHourlyLimit"),
        ({"timeZone": "Mars/Olympus"}, "INVALID_INPUT", "timeZone"),
        ({"smtpUrl": "http://mail.example"}, "INVALID_INPUT", "smtpUrl"),
        ({"smtpUrl": "smtp://:25"}, "INVALID_INPUT", "smtpUrl"),
        ({"userId": "VXNlcjo5OTk5"}, "NOT_FOUND", "userId"),
    ],
)
async def test_bad_mailbox_input_is_refused_naming_the_field(
    gql: GraphQL, org: Org, input_: dict[str, Any], code: str, field: str
) -> None:
    answer = await _create(gql, org, **({"address": "rep@acme.example"} | input_))

    assert answer["mailbox"] is None
    assert [(e["code"], e["field"]) for e in answer["errors"]] == [(code, ["input", field])]
    assert await Mailbox.all().count() == 0


async def test_a_user_has_one_active_mailbox_and_the_organization_one_shared(gql: GraphQL, org: Org) -> None:
    agent = org.user_gid(Role.AGENT)
    first = await _create(gql, org, address="ada@acme.example", userId=agent)
    await _create(gql, org, address="team@acme.example")

    second_own = await _create(gql, org, address="ada2@acme.example", userId=agent)
    second_shared = await _create(gql, org, address="team2@acme.example")
    await mutate(
        gql, org.tokens[Role.ADMIN], "updateMailbox", "mailbox { id }", id=first["mailbox"]["id"], active=False
    )
    replacement = await _create(gql, org, address="ada2@acme.example", userId=agent)
    reactivated = await mutate(
        gql, org.tokens[Role.ADMIN], "updateMailbox", "mailbox { id }", id=first["mailbox"]["id"], active=True
    )

    assert [(e["code"], e["field"]) for e in second_own["errors"]] == [("CONFLICT", ["input", "userId"])]
    assert [(e["code"], e["field"]) for e in second_shared["errors"]] == [("CONFLICT", ["input", "userId"])]
    assert replacement["errors"] == []
    assert [e["code"] for e in reactivated["errors"]] == ["CONFLICT"]


async def test_an_organization_holds_a_bounded_number_of_mailboxes(
    gql: GraphQL, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mailboxes, "MAX_MAILBOXES", 2)
    await _create(gql, org, address="a@acme.example")
    await _create(gql, org, address="b@acme.example", userId=org.user_gid(Role.AGENT))

    third = await _create(gql, org, address="c@acme.example", userId=org.user_gid(Role.MANAGER))

    assert [e["code"] for e in third["errors"]] == ["CONFLICT"]
    assert await Mailbox.filter(organization_id=org.id).count() == 2


# Its own SMTP server


async def test_the_smtp_url_is_stored_sealed_and_never_returned(gql: GraphQL, org: Org, settings: Settings) -> None:
    url = "smtp://ada:s3cret-pass@smtp.acme.example:587?starttls=1"
    created = await _create(gql, org, address="ada@acme.example", smtpUrl=url)

    assert created["mailbox"]["hasOwnSmtp"] is True and "s3cret" not in str(created)
    [row] = await connections.get("default").execute_query_dict('SELECT "id", "smtp_url_sealed" FROM "mailbox"')
    assert row["smtp_url_sealed"].startswith(sealing.PREFIX) and "s3cret" not in row["smtp_url_sealed"]
    mailbox = await Mailbox.get(id=row["id"])
    assert mailbox.smtp_url_sealed is not None
    assert mailboxes.smtp_url_of(mailbox, secret_key=settings.secret_key) == url
    with pytest.raises(sealing.UnreadableSecret):  # bound to its row: copied to another, it opens nowhere
        sealing.unseal(
            mailbox.smtp_url_sealed,
            secret_key=settings.secret_key,
            label=mailboxes._LABEL,
            associated=b"mailbox/0/smtp_url",
        )

    cleared = await mutate(
        gql,
        org.tokens[Role.ADMIN],
        "updateMailbox",
        "mailbox { hasOwnSmtp }",
        id=created["mailbox"]["id"],
        smtpUrl=None,
    )
    assert cleared["mailbox"] == {"hasOwnSmtp": False}
    assert (await Mailbox.get(id=row["id"])).smtp_url_sealed is None


# One organization's addresses


async def test_an_address_is_one_organizations_mailbox_or_sender(
    gql: GraphQL, org: Org, other_org: Org, settings: Settings, clock: FrozenClock
) -> None:
    await accounts.update_organization(
        actor=other_org.actor(Role.ADMIN, clock),
        changes=accounts.OrganizationChanges(email_from="sales@globex.example"),
        settings=settings,
    )
    ours = await _create(gql, org, address="ada@acme.example")

    theirs_as_mailbox = await _create(gql, other_org, address="ADA@acme.example")
    their_sender_as_mailbox = await _create(gql, org, address="sales@globex.example")
    with pytest.raises(Conflict):
        await accounts.update_organization(
            actor=other_org.actor(Role.ADMIN, clock),
            changes=accounts.OrganizationChanges(email_from="ada@acme.example"),
            settings=settings,
        )

    assert ours["errors"] == []
    for refused in (theirs_as_mailbox, their_sender_as_mailbox):
        assert [(e["code"], e["field"]) for e in refused["errors"]] == [("CONFLICT", ["input", "address"])]
    assert await SendingIdentity.filter(address="ada@acme.example").values_list("organization_id", "kind") == [
        (org.id, IdentityKind.MAILBOX)
    ]


async def test_a_mailbox_may_be_the_organizations_own_sender_address_and_gives_it_back(
    gql: GraphQL, org: Org, settings: Settings, clock: FrozenClock
) -> None:
    admin = org.actor(Role.ADMIN, clock)
    await accounts.update_organization(
        actor=admin, changes=accounts.OrganizationChanges(email_from="sales@acme.example"), settings=settings
    )
    created = await _create(gql, org, address="sales@acme.example")
    await mutate(gql, org.tokens[Role.ADMIN], "deleteMailbox", "deletedId", id=created["mailbox"]["id"])

    assert created["errors"] == []
    assert await SendingIdentity.filter(address="sales@acme.example").values_list("organization_id", "kind") == [
        (org.id, IdentityKind.EMAIL_FROM)
    ]

    # The other way round: emailFrom set to one of its mailboxes' addresses claims nothing more.
    again = await _create(gql, org, address="team@acme.example")
    await accounts.update_organization(
        actor=admin, changes=accounts.OrganizationChanges(email_from="Team@acme.example"), settings=settings
    )
    assert await SendingIdentity.filter(organization_id=org.id).order_by("address").values_list("address", "kind") == [
        ("team@acme.example", IdentityKind.MAILBOX)
    ]
    await mutate(gql, org.tokens[Role.ADMIN], "deleteMailbox", "deletedId", id=again["mailbox"]["id"])
    assert await SendingIdentity.filter(organization_id=org.id).values_list("address", "kind") == [
        ("team@acme.example", IdentityKind.EMAIL_FROM)
    ]


async def test_two_organizations_racing_for_one_address_get_one_mailbox(database: str, clock: FrozenClock) -> None:
    if not database.startswith("postgres"):
        pytest.skip("SQLite runs one writer at a time: no race")
    settings = Settings.from_env({})
    first, second = await make_org("Acme", clock), await make_org("Globex", clock)

    outcomes = await asyncio.gather(
        *(
            mailboxes.create_mailbox(actor=o.actor(Role.ADMIN, clock), settings=settings, address="ada@shared.example")
            for o in (first, second)
            for _ in range(3)
        ),
        return_exceptions=True,
    )

    made = [o for o in outcomes if isinstance(o, Mailbox)]
    assert len(made) == 1 and all(isinstance(o, Conflict) for o in outcomes if o not in made)
    assert await SendingIdentity.filter(address="ada@shared.example").values_list("organization_id", flat=True) == [
        made[0].organization_id
    ]


async def test_an_email_sent_to_a_mailbox_address_reaches_its_organization(
    gql: GraphQL, org: Org, other_org: Org, clock: FrozenClock
) -> None:
    await _create(gql, org, address="ada@acme.example")
    await _create(gql, other_org, address="bob@globex.example")
    [enrollment] = await setup(org, clock, steps=EMAIL_STEP)
    raw = (
        b"From: Ada King <ada@client.example>\r\nTo: Ada Rep <ada@acme.example>\r\n"
        b"Subject: Hello\r\nMessage-ID: <first@client.example>\r\n\r\nCall me tomorrow.\r\n"
    )

    received = await email_routing.receive_email(raw, clock=clock, cpu_seconds=5)

    assert received.outcome is email_routing.Outcome.RECORDED
    [reply] = await Message.filter(direction="INBOUND")
    assert (reply.organization_id, reply.prospect_id) == (org.id, enrollment.prospect_id)


# Which mailbox sends


async def _people(org: Org) -> list[dict[str, object]]:
    return [
        {"first_name": "Ada", "email": "ada@client.example", "owner_id": org.users[Role.AGENT].id},
        {"first_name": "Bob", "email": "bob@client.example", "owner_id": org.users[Role.MANAGER].id},
        {"first_name": "Cy", "email": "cy@client.example", "owner_id": None},
    ]


async def _sent(message_ids: list[int], settings: Settings, clock: FrozenClock) -> dict[int, MessageState]:
    transports = sending.transports_for(settings)
    try:
        return await sending.send_batch(message_ids, transports=transports, settings=settings, clock=clock)
    finally:
        await transports.close()


async def test_an_enrollments_email_goes_from_the_owners_mailbox_else_the_shared_one_else_email_from(
    gql: GraphQL, org: Org, clock: FrozenClock, tmp_path: Path, sql_queries: Any
) -> None:
    await Organization.filter(id=org.id).update(email_from="sales@acme.example")
    await _create(gql, org, address="ada.rep@acme.example", displayName="Zoë Rep", userId=org.user_gid(Role.AGENT))
    await setup(org, clock, steps=EMAIL_STEP, people=await _people(org))

    before = sql_queries.count
    queued = (await scheduler.run_pass(clock)).queued
    without_shared = sql_queries.count - before
    with smtp_sink() as (sink, url):
        states = await _sent(queued, _settings(tmp_path, SMTP_URL=url), clock)

    assert set(states.values()) == {MessageState.SENT}
    by_recipient = {e["To"]: e for e in (message_from_bytes(r, policy=policy.default) for r in sink.raw)}
    ada = by_recipient["ada@client.example"]["From"]
    assert (ada.addresses[0].display_name, ada.addresses[0].addr_spec) == ("Zoë Rep", "ada.rep@acme.example")
    assert by_recipient["bob@client.example"]["From"] == "sales@acme.example"
    assert by_recipient["cy@client.example"]["From"] == "sales@acme.example"
    rows = await Message.filter(id__in=queued).order_by("id").values_list("to_address", "mailbox_id", "from_address")
    [rep] = await Mailbox.filter(organization_id=org.id)
    assert rows == [
        ("ada@client.example", rep.id, "ada.rep@acme.example"),
        ("bob@client.example", None, None),
        ("cy@client.example", None, None),
    ]
    assert without_shared < 30  # one read of the mailboxes for the pass, not one per message

    # A shared mailbox now takes those without a mailbox of their own.
    await _create(gql, org, address="team@acme.example", displayName="Acme Team")
    await setup(org, clock, steps=EMAIL_STEP, people=[{"first_name": "Dee", "email": "dee@client.example"}])
    [dee] = (await scheduler.run_pass(clock)).queued
    with smtp_sink() as (sink, url):
        await _sent([dee], _settings(tmp_path, SMTP_URL=url), clock)
    [email] = sink.received
    assert email["From"] == "Acme Team <team@acme.example>"
    assert email["Message-ID"].endswith("@acme.example>")


async def test_the_from_header_of_a_non_ascii_name_is_encoded(org: Org, clock: FrozenClock, tmp_path: Path) -> None:
    mailbox = await mailboxes.create_mailbox(
        actor=org.actor(Role.ADMIN, clock), settings=_settings(tmp_path), address="zoe@acme.example",
        display_name="Zoë \"the rep\", Sales",
    )  # fmt: skip
    await setup(org, clock, steps=EMAIL_STEP)
    queued = (await scheduler.run_pass(clock)).queued
    with smtp_sink() as (sink, url):
        await _sent(queued, _settings(tmp_path, SMTP_URL=url), clock)

    [raw] = sink.raw
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and b"=?utf-8?" in head
    parsed = message_from_bytes(raw, policy=policy.default)
    [address] = parsed["From"].addresses
    assert (address.display_name, address.addr_spec) == ('Zoë "the rep", Sales', mailbox.address)


async def test_a_mailbox_with_its_own_smtp_server_sends_through_it(
    gql: GraphQL, org: Org, clock: FrozenClock, tmp_path: Path
) -> None:
    with smtp_sink() as (main, main_url), smtp_sink() as (own, own_url):
        await _create(gql, org, address="ada.rep@acme.example", userId=org.user_gid(Role.AGENT), smtpUrl=own_url)
        await setup(org, clock, steps=EMAIL_STEP, people=await _people(org))
        queued = (await scheduler.run_pass(clock)).queued
        settings = _settings(tmp_path, SMTP_URL=main_url)
        transports = sending.transports_for(settings)
        try:
            await sending.send_batch(queued, transports=transports, settings=settings, clock=clock)
            assert len(transports.mailbox_smtp) == 1
        finally:
            await transports.close()
        assert len(transports.mailbox_smtp) == 0

    assert own.recipients == ["ada@client.example"]
    assert sorted(main.recipients) == ["bob@client.example", "cy@client.example"]


async def test_mailbox_smtp_pools_are_bounded_and_closed() -> None:
    one, two, three = (f"smtp://user:pass@127.0.0.1:{port}" for port in (2501, 2502, 2503))
    pools = SmtpPools(most=2)
    kept = [pools.for_url(one), pools.for_url(two)]
    assert pools.for_url(one) is kept[0]  # the same server, the same pool

    pools.for_url(three)  # the least recently used (two) makes room

    assert len(pools) == 2 and pools.for_url(one) is kept[0] and pools.for_url(two) is not kept[1]
    await pools.close()
    assert len(pools) == 0


# Deleting one


async def test_deleting_a_reps_mailbox_moves_its_queued_messages_to_the_shared_one(
    gql: GraphQL, org: Org, clock: FrozenClock, tmp_path: Path
) -> None:
    rep = await _create(gql, org, address="ada.rep@acme.example", userId=org.user_gid(Role.AGENT))
    await setup(org, clock, steps=EMAIL_STEP)
    [queued] = (await scheduler.run_pass(clock)).queued

    refused = await mutate(gql, org.tokens[Role.ADMIN], "deleteMailbox", "deletedId", id=rep["mailbox"]["id"])
    shared = await _create(gql, org, address="team@acme.example", displayName="Team")
    deleted = await mutate(gql, org.tokens[Role.ADMIN], "deleteMailbox", "deletedId", id=rep["mailbox"]["id"])
    with smtp_sink() as (sink, url):
        await _sent([queued], _settings(tmp_path, SMTP_URL=url), clock)

    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("CONFLICT", ["input", "id"])]
    assert deleted["errors"] == []
    message = await Message.get(id=queued)
    team = await Mailbox.get(address="team@acme.example")
    assert (message.mailbox_id, message.from_address) == (team.id, "team@acme.example")
    assert [e["From"] for e in sink.received] == ["Team <team@acme.example>"]
    assert shared["errors"] == []
    assert not await SendingIdentity.exists(address="ada.rep@acme.example")


async def test_the_shared_mailbox_with_queued_messages_is_not_deleted(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    shared = await _create(gql, org, address="team@acme.example")
    await setup(org, clock, steps=EMAIL_STEP)
    [queued] = (await scheduler.run_pass(clock)).queued

    refused = await mutate(gql, org.tokens[Role.ADMIN], "deleteMailbox", "deletedId", id=shared["mailbox"]["id"])
    await Message.filter(id=queued).update(state=MessageState.SENT)
    deleted = await mutate(gql, org.tokens[Role.ADMIN], "deleteMailbox", "deletedId", id=shared["mailbox"]["id"])

    assert [e["code"] for e in refused["errors"]] == ["CONFLICT"]
    assert deleted["errors"] == [] and (await Message.get(id=queued)).mailbox_id is None
