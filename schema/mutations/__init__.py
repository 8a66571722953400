"""Mutations, grouped by domain; each one loads, calls one service and wraps the result."""

from strawberry.tools import merge_types

from schema.mutations.accounts import AccountMutations
from schema.mutations.distribution import DistributionMutations
from schema.mutations.messages import MessageMutations
from schema.mutations.prospects import ProspectMutations
from schema.mutations.sequences import SequenceMutations
from schema.mutations.workflows import WorkflowMutations
from schema.webhooks import WebhookMutations

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
