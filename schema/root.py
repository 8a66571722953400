"""The root types, merged from the domains' fields: Query (with `node`) and Mutation.

Each domain's queries module lists the node types it reads (``NODES``); each
mutation loads, calls one service and wraps the result."""

from __future__ import annotations

import strawberry
from strawberry.tools import merge_types

from app import ids
from schema.accounts import queries as accounts
from schema.accounts.mutations import AccountMutations
from schema.consent import queries as consent
from schema.consent.mutations import ConsentMutations
from schema.context import Info
from schema.distribution.mutations import DistributionMutations
from schema.events import queries as events
from schema.mailboxes import queries as mailboxes
from schema.mailboxes.mutations import MailboxMutations
from schema.messaging import queries as messaging
from schema.messaging.mutations import MessageMutations
from schema.node import Node, NodeReader
from schema.prospects import queries as prospects
from schema.prospects.mutations import ProspectMutations
from schema.reports.queries import ReportQueries
from schema.sequences import queries as sequences
from schema.sequences.mutations import SequenceMutations
from schema.webhooks import queries as webhooks
from schema.webhooks.mutations import WebhookMutations
from schema.workflows import queries as workflows
from schema.workflows.mutations import WorkflowMutations

_NODES: dict[str, NodeReader] = {
    **accounts.NODES,
    **workflows.NODES,
    **prospects.NODES,
    **sequences.NODES,
    **messaging.NODES,
    **events.NODES,
    **webhooks.NODES,
    **consent.NODES,
    **mailboxes.NODES,
}


@strawberry.type
class NodeQueries:
    @strawberry.field
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        """The node for ``id`` if the viewer may read it; None for anything else."""
        decoded = ids.decode(id)
        if decoded is None:
            return None
        type_name, pk = decoded
        read = _NODES.get(type_name)
        return None if read is None else await read(info, pk)


Query = merge_types(
    "Query",
    (
        NodeQueries,
        accounts.AccountQueries,
        workflows.WorkflowQueries,
        prospects.ProspectQueries,
        sequences.SequenceQueries,
        events.EventQueries,
        ReportQueries,
        webhooks.WebhookQueries,
        sequences.EnrollmentQueries,
        consent.ConsentQueries,
        mailboxes.MailboxQueries,
    ),
)

Mutation = merge_types(
    "Mutation",
    (
        AccountMutations,
        WorkflowMutations,
        ProspectMutations,
        SequenceMutations,
        MessageMutations,
        WebhookMutations,
        DistributionMutations,
        ConsentMutations,
        MailboxMutations,
    ),
)
