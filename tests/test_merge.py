"""R12.4: mergeProspects moves everything onto the kept prospect without losing
history, fills its empty fields, takes on the others' consent, deletes them."""

from __future__ import annotations

import pytest

from app import ids, presets
from app.accounts.actor import Actor
from app.accounts.models import Role
from app.clock import FrozenClock
from app.errors import Code, DomainError
from app.events.models import Event, EventType
from app.messaging import inbound
from app.messaging.models import Message
from app.prospects import service
from app.prospects.merge import merge_prospects
from app.prospects.models import (
    Activity,
    Channel,
    Prospect,
    StatusChange,
    Suppression,
    SuppressionReason,
    Task,
    TaskKind,
)
from app.sequences import enrollments
from app.sequences import service as sequences
from app.sequences.models import Enrollment, StageChange, StepType
from app.sequences.service import StepSpec
from app.sequences.state import Stage
from app.workflows.models import Interaction
from tests.conftest import GraphQL, Org, mutate


@pytest.fixture
async def admin(org: Org, clock: FrozenClock) -> Actor:
    actor = org.actor(Role.ADMIN, clock)
    await presets.apply(actor=actor, name="lead-workflow")
    return actor


async def _sequence(admin: Actor, name: str) -> int:
    sequence = await sequences.create_sequence(
        actor=admin,
        name=name,
        stop_on_reply=None,
        unresponsive_after_seconds=None,
        send_window=None,
        steps=[StepSpec(type=StepType.EMAIL, delay_seconds=3600, subject="Hi", body="Hi")],
        active=True,
    )
    return sequence.id


async def _enroll(admin: Actor, sequence_id: int, *prospects: Prospect) -> None:
    _, errors = await enrollments.enroll(
        actor=admin, sequence_id=sequence_id, prospect_ids=[p.id for p in prospects], activate=None
    )
    assert not errors


async def test_merge_moves_everything_onto_the_kept_prospect(org: Org, admin: Actor, clock: FrozenClock) -> None:
    keep = await service.create_prospect(actor=admin, values={"first_name": "Ada", "custom_fields": {"a": 1}})
    other = await service.create_prospect(
        actor=admin,
        values={
            "first_name": "Augusta",
            "email": "ada@analytical.example",
            "company": "Engines",
            "custom_fields": {"a": 2, "b": 3},
            "owner_id": org.users[Role.AGENT].id,
        },
    )
    both, only_theirs = await _sequence(admin, "Both"), await _sequence(admin, "Theirs")
    await _enroll(admin, both, keep, other)
    await _enroll(admin, only_theirs, other)
    await service.log_activity(
        actor=admin, prospect_id=other.id, interaction=Interaction.CALL, action_id=None, note=None
    )
    await Task.create(
        organization_id=org.id, prospect_id=other.id, kind=TaskKind.TODO, due_at=clock.now(), created_at=clock.now()
    )
    await Suppression.create(
        organization_id=org.id,
        channel=Channel.EMAIL,
        address="ada@analytical.example",
        reason=SuppressionReason.MANUAL,
        prospect_id=other.id,
        created_at=clock.now(),
    )
    message, _ = await inbound.record_inbound(
        actor=admin,
        channel=Channel.EMAIL,
        sender="ada@analytical.example",
        body="Out of office",
        subject=None,
        in_reply_to=None,
        auto_reply=True,  # a reply would finish the enrollments
    )
    await service.opt_out(actor=admin, prospect_id=other.id, channel=Channel.SMS)
    other_history = await StatusChange.filter(prospect_id=other.id).count()
    keep_history = await StatusChange.filter(prospect_id=keep.id).count()

    merged = await merge_prospects(actor=admin, keep_id=keep.id, merge_ids=[other.id])

    assert merged.id == keep.id
    assert not await Prospect.exists(id=other.id)
    await keep.refresh_from_db()
    assert (keep.first_name, keep.email, keep.company) == ("Ada", "ada@analytical.example", "Engines")
    assert keep.custom_fields == {"a": 1, "b": 3}
    assert keep.opted_out_channels == ["SMS"]
    assert keep.owner_id == org.users[Role.AGENT].id
    assert keep.search_text == "ada ada@analytical.example engines"
    for model in (Activity, Task, Suppression, Message):
        assert await model.filter(prospect_id=other.id).count() == 0, model
    assert await Activity.filter(prospect_id=keep.id).count() == 1
    assert await Task.filter(prospect_id=keep.id).count() == 1
    assert await Suppression.filter(prospect_id=keep.id).count() == 1
    assert (await Message.get(id=message.id)).prospect_id == keep.id
    assert await StatusChange.filter(prospect_id=keep.id).count() == keep_history + other_history
    assert await Enrollment.filter(prospect_id=keep.id).count() == 3
    kept = await Enrollment.get(prospect_id=keep.id, sequence_id=both, finished_at=None)
    assert kept.active_key == f"{keep.id}:{both}"
    theirs = await Enrollment.get(prospect_id=keep.id, sequence_id=only_theirs)
    assert (theirs.stage, theirs.active_key) == (Stage.STARTED, f"{keep.id}:{only_theirs}")
    removed = await Enrollment.get(prospect_id=keep.id, sequence_id=both, stage=Stage.REMOVED)
    assert removed.active_key is None and removed.finished_at is not None
    assert await StageChange.filter(enrollment_id=removed.id, to_stage=Stage.REMOVED, reason="merged").count() == 1
    deleted = await Event.filter(prospect_id=other.id, type=EventType.PROSPECT_DELETED).count()
    updated = await Event.filter(prospect_id=keep.id, type=EventType.PROSPECT_UPDATED).values_list("payload", flat=True)
    assert deleted == 1
    assert [p["fields"] for p in updated] == [  # type: ignore[index]
        ["company", "customFields", "email"],
        ["optedOutChannels"],
    ]


async def test_do_not_contact_of_a_merged_prospect_blocks_the_kept_one(admin: Actor) -> None:
    keep = await service.create_prospect(actor=admin, values={"email": "ada@analytical.example"})
    other = await service.create_prospect(actor=admin, values={"phone": "+12025550143"})
    sequence = await _sequence(admin, "Mail")
    await _enroll(admin, sequence, keep)
    await service.mark_do_not_contact(actor=admin, prospect_id=other.id, do_not_contact=True)
    await merge_prospects(actor=admin, keep_id=keep.id, merge_ids=[other.id])
    await keep.refresh_from_db()
    assert (keep.do_not_contact, keep.phone) == (True, "+12025550143")
    assert (await Enrollment.get(prospect_id=keep.id)).stage == Stage.OPTED_OUT


async def _refused(actor: Actor, keep_id: int, merge_ids: list[int]) -> tuple[Code, object]:
    with pytest.raises(DomainError) as refused:
        await merge_prospects(actor=actor, keep_id=keep_id, merge_ids=merge_ids)
    return refused.value.code, refused.value.field


async def test_merge_refuses_agents_itself_and_unknown_ids(
    org: Org, other_org: Org, admin: Actor, clock: FrozenClock
) -> None:
    a, b = [await service.create_prospect(actor=admin, values={"first_name": n}) for n in ("A", "B")]
    await presets.apply(actor=other_org.actor(Role.ADMIN, clock), name="lead-workflow")
    foreign = await service.create_prospect(actor=other_org.actor(Role.ADMIN, clock), values={"first_name": "F"})
    assert await _refused(org.actor(Role.AGENT, clock), a.id, [b.id]) == (Code.FORBIDDEN, None)
    assert await _refused(admin, a.id, [b.id, a.id]) == (Code.INVALID_INPUT, ("merge_ids", 1))
    assert await _refused(admin, a.id, []) == (Code.INVALID_INPUT, ("merge_ids",))
    assert await _refused(admin, a.id, [b.id, foreign.id]) == (Code.NOT_FOUND, ("merge_ids", 1))
    assert await _refused(admin, foreign.id, [b.id]) == (Code.NOT_FOUND, ("keep_id",))
    assert await _refused(admin, a.id, [b.id] * 1001) == (Code.INVALID_INPUT, ("merge_ids",))
    assert await Prospect.filter(organization_id=org.id).count() == 2


MERGE = "prospect { id email firstName activities { totalCount } }"


async def test_merge_prospects_through_the_api(gql: GraphQL, org: Org, admin: Actor) -> None:
    keep = await service.create_prospect(actor=admin, values={"first_name": "Ada"})
    other = await service.create_prospect(actor=admin, values={"email": "ada@analytical.example"})
    await service.log_activity(
        actor=admin, prospect_id=other.id, interaction=Interaction.CALL, action_id=None, note=None
    )
    keep_gid, other_gid = ids.encode("Prospect", keep.id), ids.encode("Prospect", other.id)
    refused = await mutate(gql, org.tokens[Role.MANAGER], "mergeProspects", MERGE, keepId=keep_gid, mergeIds=[keep_gid])
    assert refused == {
        "prospect": None,
        "errors": [
            {
                "code": "INVALID_INPUT",
                "message": "The prospect kept cannot be merged into itself.",
                "field": ["input", "mergeIds", "0"],
            }
        ],
    }
    forbidden = await mutate(
        gql, org.tokens[Role.AGENT], "mergeProspects", MERGE, keepId=keep_gid, mergeIds=[other_gid]
    )
    assert [e["code"] for e in forbidden["errors"]] == ["FORBIDDEN"]
    unknown = await mutate(
        gql, org.tokens[Role.MANAGER], "mergeProspects", MERGE, keepId=keep_gid, mergeIds=[other_gid, "nonsense"]
    )
    assert [(e["code"], e["field"]) for e in unknown["errors"]] == [("NOT_FOUND", ["input", "mergeIds", "1"])]
    merged = await mutate(gql, org.tokens[Role.MANAGER], "mergeProspects", MERGE, keepId=keep_gid, mergeIds=[other_gid])
    assert merged == {
        "errors": [],
        "prospect": {
            "id": keep_gid,
            "email": "ada@analytical.example",
            "firstName": "Ada",
            "activities": {"totalCount": 1},
        },
    }
