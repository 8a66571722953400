"""Mutations, grouped by domain; each one loads, calls one service and wraps the result."""

from strawberry.tools import merge_types

from schema.accounts.mutations import AccountMutations
from schema.distribution.mutations import DistributionMutations
from schema.messaging.mutations import MessageMutations
from schema.prospects.mutations import ProspectMutations
from schema.sequences.mutations import SequenceMutations
from schema.webhooks.mutations import WebhookMutations
from schema.workflows.mutations import WorkflowMutations

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
    ),
)
