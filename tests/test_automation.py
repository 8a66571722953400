"""R8: automation rules for PROSPECT_CREATED and STATUS_ENTERED, with the loop guard;
ASSIGN without a user distributes round robin over active agents."""

from __future__ import annotations

import itertools

from app.accounts import service as accounts
from app.accounts.models import Role
from app.clock import FrozenClock
from app.prospects import service as prospects
from app.prospects.models import Prospect, StatusChange
from app.workflows import service as workflows
from app.workflows.models import Status, TriggerEvent
from app.workflows.operations import OperationSpec, OperationType
from tests.conftest import Org
from tests.factories import populate


def _op(kind: OperationType, status: Status | None = None, user_id: str | None = None) -> OperationSpec:
    return OperationSpec(type=kind, status_id=status.id if status else None, user_id=user_id)


async def test_rules_run_on_creation_and_on_entering_a_status(org: Org, clock: FrozenClock) -> None:
    await populate(org, clock)
    manager = org.actor(Role.MANAGER, clock)
    contact_made = await Status.get(organization_id=org.id, name="Contact Made")
    await workflows.create_rule(
        actor=manager,
        name="fresh",
        event=TriggerEvent.PROSPECT_CREATED,
        status_id=None,
        operations=[_op(OperationType.SET_STATUS, contact_made)],
        enabled=True,
    )
    await workflows.create_rule(
        actor=manager,
        name="made",
        event=TriggerEvent.STATUS_ENTERED,
        status_id=contact_made.id,
        operations=[_op(OperationType.MARK_CONTACT_MADE)],
        enabled=True,
    )

    created, errors = await prospects.create_prospects(actor=manager, inputs=[{"first_name": "Ro"}])

    prospect = await Prospect.get(id=created[0].id)
    assert not errors and prospect.status_id == contact_made.id and prospect.contact_made_at == clock.now()
    causes = await StatusChange.filter(prospect_id=prospect.id).order_by("id").values_list("cause", flat=True)
    assert list(causes) == ["USER", "AUTOMATION"]


async def test_a_chain_of_rules_stops_and_no_rule_fires_twice(org: Org, clock: FrozenClock) -> None:
    await populate(org, clock)
    manager = org.actor(Role.MANAGER, clock)
    names = [
        "New Lead",
        "Attempting Contact",
        "Final Contact",
        "Contact Made",
        "Appointment Set",
        "Sold",
        "Not Interested",
        "Unreachable",
    ]
    statuses = [await Status.get(organization_id=org.id, name=n) for n in names]
    # Entering each status moves on to the next: a chain of 7 rules.
    for here, there in itertools.pairwise(statuses):
        await workflows.create_rule(
            actor=manager,
            name=f"{here.name} → {there.name}",
            event=TriggerEvent.STATUS_ENTERED,
            status_id=here.id,
            operations=[_op(OperationType.SET_STATUS, there)],
            enabled=True,
        )
    prospect = (await prospects.create_prospects(actor=manager, inputs=[{"first_name": "Lo"}]))[0][0]
    await prospects.set_status(
        actor=manager,
        prospect_id=prospect.id,
        status_id=statuses[1].id,
        note=None,
    )

    await prospect.refresh_from_db()
    changes = await StatusChange.filter(prospect_id=prospect.id).order_by("id")
    # Creation, the user's change, then 5 automatic ones (depth 1..5); the 6th rule is cut.
    assert [c.cause for c in changes] == ["USER", "USER", *["AUTOMATION"] * 5]
    assert prospect.status_id == statuses[-2].id
    assert [c.to_status_id for c in changes[1:]] == [s.id for s in statuses[1:-1]]


async def test_a_self_triggering_rule_fires_once(org: Org, clock: FrozenClock) -> None:
    await populate(org, clock)
    manager = org.actor(Role.MANAGER, clock)
    a = await Status.get(organization_id=org.id, name="Contact Made")
    b = await Status.get(organization_id=org.id, name="Appointment Set")
    for here, there in ((a, b), (b, a)):
        await workflows.create_rule(
            actor=manager,
            name=f"to {there.name}",
            event=TriggerEvent.STATUS_ENTERED,
            status_id=here.id,
            operations=[_op(OperationType.SET_STATUS, there), _op(OperationType.MARK_CONTACT_ATTEMPTED)],
            enabled=True,
        )
    prospect = (await prospects.create_prospects(actor=manager, inputs=[{"first_name": "Yo"}]))[0][0]
    await prospects.set_status(actor=manager, prospect_id=prospect.id, status_id=a.id, note=None)
    await prospect.refresh_from_db()
    # a → (rule 1) b → (rule 2) a → rule 1 again is refused: it already fired in this chain.
    assert prospect.status_id == a.id and prospect.contact_attempts == 2


async def test_assign_without_a_user_goes_round_robin_over_active_agents(org: Org, clock: FrozenClock) -> None:
    await populate(org, clock)
    admin = org.actor(Role.ADMIN, clock)
    agents = [org.users[Role.AGENT]]
    for name in ("B", "C"):
        agents.append(await accounts.create_user(actor=admin, name=name, email=f"{name}@acme.example", role=Role.AGENT))
    await workflows.create_rule(
        actor=admin,
        name="distribute",
        event=TriggerEvent.PROSPECT_CREATED,
        status_id=None,
        operations=[_op(OperationType.ASSIGN)],
        enabled=True,
    )
    created, _ = await prospects.create_prospects(actor=admin, inputs=[{"first_name": f"R{i}"} for i in range(9)])
    owners = [(await Prospect.get(id=p.id)).owner_id for p in created]
    assert owners == [a.id for a in agents] * 3
    singles = []
    for _ in range(3):
        created, _ = await prospects.create_prospects(actor=admin, inputs=[{"first_name": "S"}])
        singles.append((await Prospect.get(id=created[0].id)).owner_id)
    assert sorted(singles) == sorted(a.id for a in agents)
