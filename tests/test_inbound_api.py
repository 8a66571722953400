"""Replies and bounces through the API (R6.4), conversation state (R7), stats and filters."""

from __future__ import annotations

from pathlib import Path

from app import ids
from app.accounts.models import Organization, Role
from app.clock import FrozenClock
from app.messaging import sending
from app.messaging.models import Message
from app.sequences import scheduler
from app.sequences.models import Enrollment, StepType
from app.sequences.service import StepSpec
from tests.conftest import GraphQL, Org, mutate
from tests.test_scheduler import setup

STEPS = [
    StepSpec(StepType.EMAIL, 0, body="Hello", subject="Hi"),
    StepSpec(StepType.EMAIL, 3600, body="Again", subject="Re: Hi"),
]
INBOUND = "message { direction state channel body autoReply receivedAt } prospect { conversationState lastMessageAt }"


async def _sent_first_email(org: Org, clock: FrozenClock, tmp_path: Path) -> tuple[Enrollment, Message]:
    await Organization.filter(id=org.id).update(email_from="sales@acme.example")
    [enrollment] = await setup(org, clock, steps=STEPS)
    [message_id] = (await scheduler.run_pass(clock)).queued
    settings = sending.Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "data")})
    assert (
        await sending.send(message_id, transports=sending.transports_for(settings), settings=settings, clock=clock)
        == "SENT"
    )
    return enrollment, await Message.get(id=message_id)


async def test_a_reply_finishes_the_enrollment_and_nothing_more_is_sent(
    gql: GraphQL, org: Org, clock: FrozenClock, tmp_path: Path
) -> None:
    enrollment, first = await _sent_first_email(org, clock, tmp_path)
    prospect = ids.encode("Prospect", enrollment.prospect_id)
    state = await gql(
        org.tokens[Role.AGENT],
        "query($id: ID!) { node(id: $id) { ... on Prospect { conversationState } } }",
        id=prospect,
    )
    assert state["data"]["node"] == {"conversationState": "AWAITING_REPLY"}

    clock.advance(60)
    auto = await mutate(
        gql,
        org.tokens[Role.AGENT],
        "recordInboundMessage",
        INBOUND,
        channel="EMAIL",
        **{"from": "ADA@client.example"},
        body="I am away",
        autoReply=True,
    )
    await enrollment.refresh_from_db()
    assert auto["message"]["autoReply"] is True and auto["prospect"]["conversationState"] == "AWAITING_REPLY"
    assert enrollment.stage == "APPROACHING"

    reply = await mutate(
        gql,
        org.tokens[Role.AGENT],
        "recordInboundMessage",
        INBOUND,
        channel="EMAIL",
        **{"from": "someone@else.example"},
        body="Tell me more",
        inReplyTo=first.external_id,
    )
    assert reply["errors"] == []
    assert reply["message"] | {"receivedAt": None} == {
        "direction": "INBOUND",
        "state": "RECEIVED",
        "channel": "EMAIL",
        "body": "Tell me more",
        "autoReply": False,
        "receivedAt": None,
    }
    assert reply["prospect"] == {"conversationState": "REPLY_NEEDED", "lastMessageAt": clock.now().isoformat()}
    await enrollment.refresh_from_db()
    assert enrollment.stage == "REPLIED"

    clock.advance(7200)
    assert (await scheduler.run_pass(clock)).queued == []  # the second step never goes out
    assert await Message.filter(enrollment_id=enrollment.id).count() == 1
    unknown = await mutate(
        gql,
        org.tokens[Role.AGENT],
        "recordInboundMessage",
        "message { id }",
        channel="SMS",
        **{"from": "+12025550199"},
        body="who?",
    )
    assert [(e["code"], e["field"]) for e in unknown["errors"]] == [("NOT_FOUND", ["input", "from"])]


async def test_a_reply_cancels_a_message_still_queued(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    [enrollment] = await setup(org, clock, steps=STEPS)
    [message_id] = (await scheduler.run_pass(clock)).queued
    await mutate(
        gql,
        org.tokens[Role.AGENT],
        "recordInboundMessage",
        "message { id }",
        channel="SMS",
        **{"from": "(202) 555-0143"},
        body="please call me",
    )
    message = await Message.get(id=message_id)
    await enrollment.refresh_from_db()
    assert (message.state, enrollment.stage) == ("CANCELLED", "REPLIED")


async def test_bounces_hard_and_soft(gql: GraphQL, org: Org, clock: FrozenClock, tmp_path: Path) -> None:
    enrollment, first = await _sent_first_email(org, clock, tmp_path)
    soft = await mutate(
        gql,
        org.tokens[Role.MANAGER],
        "recordBounce",
        "message { state bounceType error } prospect { optedOutChannels }",
        messageId=ids.encode("Message", first.id),
        type="SOFT",
        reason="mailbox full",
    )
    assert soft["message"] == {"state": "SENT", "bounceType": "SOFT", "error": "mailbox full"}
    assert soft["prospect"] == {"optedOutChannels": []}
    hard = await mutate(
        gql,
        org.tokens[Role.MANAGER],
        "recordBounce",
        "message { state bounceType } prospect { optedOutChannels }",
        email="ada@client.example",
        type="HARD",
        reason="5.1.1",
    )
    assert hard["message"] == {"state": "BOUNCED", "bounceType": "HARD"} and hard["prospect"] == {
        "optedOutChannels": ["EMAIL"]
    }
    await enrollment.refresh_from_db()
    assert enrollment.stage == "BOUNCED"
    neither = await mutate(gql, org.tokens[Role.MANAGER], "recordBounce", "message { id }", type="HARD")
    assert [e["code"] for e in neither["errors"]] == ["INVALID_INPUT"]

    stats = await gql(
        org.tokens[Role.MANAGER],
        "{ sequences { edges { node { stats { enrolled sent bounced replied optedOut byStage { stage count } } messages: steps { position } } } } }",
    )
    assert stats["data"]["sequences"]["edges"][0]["node"]["stats"] == {
        "enrolled": 1,
        "sent": 1,
        "bounced": 1,
        "replied": 0,
        "optedOut": 0,
        "byStage": [{"stage": "BOUNCED", "count": 1}],
    }


async def test_prospects_filter_by_conversation_sequence_and_stage(
    gql: GraphQL, org: Org, clock: FrozenClock, tmp_path: Path
) -> None:
    enrollment, _ = await _sent_first_email(org, clock, tmp_path)
    sequence = ids.encode("Sequence", enrollment.sequence_id)
    for filter_, count in [
        ("{conversationStates: [AWAITING_REPLY]}", 1),
        ("{conversationStates: [NEW]}", 0),
        (f'{{sequenceIds: ["{sequence}"]}}', 1),
        ("{enrollmentStages: [APPROACHING]}", 1),
        ("{enrollmentStages: [REPLIED]}", 0),
    ]:
        body = await gql(org.tokens[Role.MANAGER], f"{{ prospects(filter: {filter_}) {{ totalCount }} }}")
        assert body["data"]["prospects"]["totalCount"] == count, filter_
    messages = await gql(
        org.tokens[Role.MANAGER],
        "query($id: ID!) { node(id: $id) { ... on Prospect { messages { totalCount edges { node { subject state step { position } enrollment { stage } } } } } } }",
        id=ids.encode("Prospect", enrollment.prospect_id),
    )
    assert messages["data"]["node"]["messages"] == {
        "totalCount": 1,
        "edges": [
            {
                "node": {
                    "subject": "Hi",
                    "state": "SENT",
                    "step": {"position": 1},
                    "enrollment": {"stage": "APPROACHING"},
                }
            }
        ],
    }


async def test_send_message_operation_queues_a_rendered_one_off(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    [enrollment] = await setup(org, clock, steps=STEPS)
    token = org.tokens[Role.MANAGER]
    created = await mutate(
        gql,
        token,
        "createAction",
        "action { id operations { type channel subject body } }",
        name="Send brochure",
        operations=[
            {
                "type": "SEND_MESSAGE",
                "channel": "EMAIL",
                "subject": "For {{ company }}",
                "body": "Dear {{ first_name }}",
            }
        ],
    )
    assert created["action"]["operations"] == [
        {"type": "SEND_MESSAGE", "channel": "EMAIL", "subject": "For {{ company }}", "body": "Dear {{ first_name }}"}
    ]
    await mutate(
        gql,
        token,
        "logActivity",
        "activity { id }",
        prospectId=ids.encode("Prospect", enrollment.prospect_id),
        interaction="CALL",
        actionId=created["action"]["id"],
    )
    message = await Message.get(enrollment_id=None, prospect_id=enrollment.prospect_id)
    assert (message.state, message.subject, message.body, message.to_address) == (
        "QUEUED",
        "For Engines",
        "Dear Ada",
        "ada@client.example",
    )
    clock.advance(scheduler.RECOVER_AFTER.total_seconds())
    assert message.id in await scheduler.queued_messages(clock)
    for operation, field in [
        ({"type": "SEND_MESSAGE", "channel": "EMAIL", "body": "x"}, "subject"),
        ({"type": "SEND_MESSAGE", "channel": "SMS", "subject": "s", "body": "x"}, "subject"),
        ({"type": "SEND_MESSAGE", "channel": "PHONE", "body": "x"}, "channel"),
        ({"type": "SEND_MESSAGE", "channel": "SMS", "body": "{{ nope }}"}, "body"),
        ({"type": "SEND_MESSAGE", "body": "x"}, "channel"),
    ]:
        bad = await mutate(gql, token, "createAction", "action { id }", name="bad", operations=[operation])
        assert [e["field"] for e in bad["errors"]] == [["input", "operations", "0", field]], operation


async def test_recorded_soft_bounces_count_like_the_webhooks(
    gql: GraphQL, org: Org, clock: FrozenClock, tmp_path: Path
) -> None:
    """One bounce rule for the API and the email webhook: the third soft bounce of an
    address within 7 days counts as hard."""
    enrollment, first = await _sent_first_email(org, clock, tmp_path)
    states = []
    for _ in range(3):
        result = await mutate(
            gql,
            org.tokens[Role.MANAGER],
            "recordBounce",
            "message { state bounceType } prospect { optedOutChannels }",
            messageId=ids.encode("Message", first.id),
            type="SOFT",
            reason="4.2.2 mailbox full",
        )
        states.append(
            (result["message"]["state"], result["message"]["bounceType"], result["prospect"]["optedOutChannels"])
        )
        clock.advance(86400 * 3)
    assert states == [("SENT", "SOFT", []), ("SENT", "SOFT", []), ("BOUNCED", "HARD", ["EMAIL"])]
    await enrollment.refresh_from_db()
    assert enrollment.stage == "BOUNCED"
