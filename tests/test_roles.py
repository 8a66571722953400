"""R1.3: the role matrix over every mutation, and what an AGENT may see and work."""

from __future__ import annotations

import pytest

from app import ids
from app.accounts.models import Role
from app.clock import FrozenClock
from app.prospects.models import Prospect
from tests.conftest import GraphQL, Org
from tests.factories import populate
from tests.schema_inputs import MUTATIONS, sample
from tests.test_isolation import snapshot

ADMIN_ONLY = {
    "updateOrganization",
    "createUser",
    "updateUser",
    "createApiToken",
    "revokeApiToken",
    "createWebhookEndpoint",
    "updateWebhookEndpoint",
    "deleteWebhookEndpoint",
    "rotateWebhookSecret",
    "removeSuppression",
}
CONFIGURATION = {
    "assignProspects",  # not configuration, but for MANAGER and ADMIN alike
    "createWorkflow",
    "updateWorkflow",
    "deleteWorkflow",
    "createStatus",
    "updateStatus",
    "deleteStatus",
    "createActionCategory",
    "createAction",
    "updateAction",
    "deleteAction",
    "createAutomationRule",
    "updateAutomationRule",
    "deleteAutomationRule",
    "applyPreset",
    "deleteProspect",
    "mergeProspects",  # erases the merged prospects, as deleteProspect does
    "createSequence",
    "updateSequence",
    "setSequenceActive",
    "addSequenceStep",
    "updateSequenceStep",
    "removeSequenceStep",
    "addSuppressions",  # not configuration, but for MANAGER and ADMIN alike
    "createMailbox",
    "updateMailbox",
    "deleteMailbox",
}
WORK = {
    "createProspect",
    "createProspects",
    "upsertProspects",
    "updateProspect",
    "setProspectStatus",
    "logActivity",
    "markDoNotContact",
    "optOutProspect",
    "completeTask",
    "enrollProspects",
    "activateEnrollments",
    "pauseEnrollments",
    "pauseEnrollmentsUntil",
    "resumeEnrollments",
    "jumpEnrollments",
    "finishEnrollments",
    "removeEnrollments",
    "recordInboundMessage",
    "recordBounce",
    "unassignProspects",
    "pullProspects",
    "pullProspect",
    "sendMessage",
}
ALLOWED = {
    Role.ADMIN: ADMIN_ONLY | CONFIGURATION | WORK,
    Role.MANAGER: CONFIGURATION | WORK,
    Role.AGENT: WORK,
}


def test_every_mutation_is_classified() -> None:
    assert set(MUTATIONS) == ADMIN_ONLY | CONFIGURATION | WORK


CASES = [(m, r) for m in sorted(MUTATIONS) for r in Role]


@pytest.mark.parametrize(("mutation", "role"), CASES, ids=[f"{m}:{r.value}" for m, r in CASES])
async def test_role_matrix(gql: GraphQL, org: Org, clock: FrozenClock, mutation: str, role: Role) -> None:
    own = await populate(org, clock)
    if mutation == "applyPreset":
        variables = {"input": {"name": "lead-workflow"}}
    else:
        variables = {"input": sample(MUTATIONS[mutation].args["input"].type, mutation, "input", own, ["input"], [], {})}
    document = (
        f"mutation($input: {MUTATIONS[mutation].args['input'].type}) "
        f"{{ {mutation}(input: $input) {{ errors {{ code message field }} }} }}"
    )
    await gql(org.tokens[role], "{ viewer { id } }")
    before = await snapshot()

    body = await gql(org.tokens[role], document, **variables)

    codes = [e["code"] for e in body["data"][mutation]["errors"]]
    if mutation in ALLOWED[role]:
        assert "FORBIDDEN" not in codes, body
    else:
        assert codes == ["FORBIDDEN"], body
        assert await snapshot() == before


PROSPECTS = "query { prospects(first: 100) { totalCount edges { node { firstName } } } }"


async def test_an_agent_cannot_read_or_work_another_owners_prospect(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    await populate(org, clock)
    agent_names = {"Mine": org.user_gid(Role.AGENT), "Nobody's": None, "Manager's": org.user_gid(Role.MANAGER)}
    body = await gql(
        org.tokens[Role.MANAGER],
        """
        mutation($input: CreateProspectsInput!) { createProspects(input: $input) { errors { code } } }
    """,
        input={"prospects": [{"firstName": name, "ownerId": owner} for name, owner in agent_names.items()]},
    )
    assert body["data"]["createProspects"]["errors"] == []
    managers = await Prospect.get(first_name="Manager's")
    managers_id = ids.encode("Prospect", managers.id)

    listed = await gql(org.tokens[Role.AGENT], PROSPECTS)
    node = await gql(org.tokens[Role.AGENT], "query($id: ID!) { node(id: $id) { id } }", id=managers_id)
    update = await gql(
        org.tokens[Role.AGENT],
        """
        mutation($input: UpdateProspectInput!) { updateProspect(input: $input) { errors { code field } } }
    """,
        input={"id": managers_id, "firstName": "Stolen"},
    )

    names = sorted(e["node"]["firstName"] for e in listed["data"]["prospects"]["edges"])
    assert names == ["Mine", "Nobody's", "Pat"]
    assert node == {"data": {"node": None}}
    assert update["data"]["updateProspect"]["errors"] == [{"code": "NOT_FOUND", "field": ["input", "id"]}]
    await managers.refresh_from_db()
    assert managers.first_name == "Manager's"
    manager_view = await gql(org.tokens[Role.MANAGER], PROSPECTS)
    assert manager_view["data"]["prospects"]["totalCount"] == 4


async def test_an_agent_may_not_give_a_new_prospect_to_someone_else(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    await populate(org, clock)
    body = await gql(
        org.tokens[Role.AGENT],
        """
        mutation($input: CreateProspectInput!) { createProspect(input: $input) { prospect { id } errors { code field } } }
    """,
        input={"prospect": {"firstName": "X", "ownerId": org.user_gid(Role.MANAGER)}},
    )
    assert body["data"]["createProspect"] == {
        "prospect": None,
        "errors": [{"code": "FORBIDDEN", "field": ["input", "prospect", "ownerId"]}],
    }
    assert not await Prospect.filter(first_name="X").exists()
