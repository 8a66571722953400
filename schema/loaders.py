"""DataLoaders, built per request and scoped to the viewer's organization (app's tenant filter).

Each turns the N look-ups of one GraphQL level into one SQL query, so a page
of 100 prospects with their statuses, workflows, owners and tasks costs the
same number of queries as a page of 1.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable
from functools import partial
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader
from tortoise.models import Model

from app.accounts.actor import Actor
from app.accounts.models import Organization, User
from app.accounts.read import of_organization, organizations
from app.messaging import limits
from app.messaging.models import Mailbox, Message
from app.prospects import suppressions
from app.prospects.models import Activity, Channel, Prospect, StatusChange, Task
from app.sequences import read as sequence_read
from app.sequences import service as sequence_service
from app.sequences.models import Enrollment, Sequence, SequenceStep, StageChange
from app.workflows import availability
from app.workflows import read as workflow_read
from app.workflows.models import Action, ActionCategory, Status, Workflow

M = TypeVar("M", bound=Model)
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
R = TypeVar("R")


def loaded(loader: DataLoader[K, V], key: K, wrap: Callable[[V], R]) -> R | Awaitable[R]:
    """``wrap`` of ``loader``'s value for ``key``: at once when the loader holds it
    already (a page's resolver loaded it for every row of the page), else once the
    next batch brings it. Answering at once spares graphql-core a task per field of
    every row: a quarter of the CPU of a page of 100 with statuses, owners and
    enrollments (tests/benchmarks/README.md)."""
    future = loader.cache_map.get(key)
    if future is not None and future.done() and not future.cancelled() and future.exception() is None:
        return wrap(future.result())
    return _later(loader.load(key), wrap)


async def _later(value: Awaitable[V], wrap: Callable[[V], R]) -> R:
    return wrap(await value)


async def fill(loader: DataLoader[K, V], keys: Iterable[K]) -> None:
    """Loads ``keys`` into ``loader`` in one batch, those it holds or awaits already
    aside. Unlike ``load_many`` it makes no future a key and no batch task, so a
    page's 100 keys cost one query and no turn of the event loop beyond it."""
    missing = list(dict.fromkeys(key for key in keys if loader.cache_map.get(key) is None))
    if missing:
        values = await loader.load_fn(missing)
        # A key whose value failed is left to load(), which raises its error where it is asked for.
        loader.prime_many(
            {key: value for key, value in zip(missing, values, strict=True) if not isinstance(value, BaseException)}
        )


def _by_id(model: type[M], organization_id: int | None) -> DataLoader[int, M | None]:
    async def load(keys: list[int]) -> list[M | None]:
        rows = {row.pk: row for row in await of_organization(model, organization_id).filter(id__in=keys)}
        return [rows.get(key) for key in keys]

    return DataLoader(load_fn=load)


def _grouped(fetch: Callable[[list[int]], Any], key_of: Callable[[Any], int]) -> DataLoader[int, list[Any]]:
    async def load(keys: list[int]) -> list[list[Any]]:
        groups: dict[int, list[Any]] = defaultdict(list)
        for row in await fetch(keys):
            groups[key_of(row)].append(row)
        return [groups.get(key, []) for key in keys]

    return DataLoader(load_fn=load)


class Loaders:
    def __init__(self, actor: Actor | None) -> None:
        org = actor.organization_id if actor else None
        self._organization_id = org
        self.status = _by_id(Status, org)
        self.workflow = _by_id(Workflow, org)
        self.user = _by_id(User, org)
        self.category = _by_id(ActionCategory, org)
        self.action = _by_id(Action, org)
        self.prospect = _by_id(Prospect, org)
        self.mailbox = _by_id(Mailbox, org)
        self.statuses_by_workflow = _grouped(
            lambda keys: workflow_read.statuses(org).filter(workflow_id__in=keys).order_by("position", "id"),
            lambda row: row.workflow_id,
        )
        self.actions_by_category = _grouped(
            lambda keys: workflow_read.actions(org).filter(category_id__in=keys).order_by("position", "id"),
            lambda row: row.category_id,
        )
        self.available_in = _grouped(lambda keys: availability.limiting_statuses(org, keys), lambda pair: pair[0])
        self.actions_by_status: DataLoader[int, list[Action]] = DataLoader(
            load_fn=lambda keys: availability.available_actions(org, keys)
        )
        self.tasks_by_prospect = _grouped(
            lambda keys: of_organization(Task, org).filter(prospect_id__in=keys).order_by("id"),
            lambda row: row.prospect_id,
        )
        self.activities_by_prospect = _grouped(
            lambda keys: of_organization(Activity, org).filter(prospect_id__in=keys).order_by("id"),
            lambda row: row.prospect_id,
        )
        self.history_by_prospect = _grouped(
            lambda keys: of_organization(StatusChange, org).filter(prospect_id__in=keys).order_by("id"),
            lambda row: row.prospect_id,
        )
        # By the prospect row (its flags and addresses), which the resolver holds already.
        self.blocked_channels: DataLoader[Prospect, set[Channel]] = DataLoader(load_fn=suppressions.blocked_channels_of)

        # The viewer's organization (its settings, e.g. the stage names every enrollment reads).
        self.organization: DataLoader[int, Organization | None] = DataLoader(load_fn=partial(_organizations, actor))

        self.sequence = _by_id(Sequence, org)
        self.step = _by_id(SequenceStep, org)
        self.enrollment = _by_id(Enrollment, org)
        # An event's subjects (several events of a page point at rows of each kind).
        self.status_change = _by_id(StatusChange, org)
        self.stage_change = _by_id(StageChange, org)
        self.message = _by_id(Message, org)
        self.task = _by_id(Task, org)
        self.steps_by_sequence = _grouped(
            lambda keys: sequence_read.steps(org).filter(sequence_id__in=keys).order_by("position", "id"),
            lambda row: row.sequence_id,
        )
        self.sequence_stats: DataLoader[int, sequence_service.Stats] = DataLoader(
            load_fn=partial(_sequence_stats, actor)
        )
        self.mailbox_usage: DataLoader[int, limits.Usage] = DataLoader(load_fn=partial(_mailbox_usage, actor))
        self.messages_by_prospect = _grouped(
            lambda keys: of_organization(Message, org).filter(prospect_id__in=keys).order_by("id"),
            lambda row: row.prospect_id,
        )
        self.enrollments_by_prospect = _grouped(
            lambda keys: of_organization(Enrollment, org).filter(prospect_id__in=keys).order_by("id"),
            lambda row: row.prospect_id,
        )
        self.stage_changes_by_enrollment = _grouped(
            lambda keys: of_organization(StageChange, org).filter(enrollment_id__in=keys).order_by("id"),
            lambda row: row.enrollment_id,
        )


async def _organizations(actor: Actor | None, keys: list[int]) -> list[Organization | None]:
    rows = {} if actor is None else {row.id: row for row in await organizations(actor)}
    return [rows.get(key) for key in keys]


async def _sequence_stats(actor: Actor | None, sequence_ids: list[int]) -> list[sequence_service.Stats]:
    if actor is None:  # no viewer, no sequence to count
        return [sequence_service.Stats(by_stage={}) for _ in sequence_ids]
    found = await sequence_service.stats(actor=actor, sequence_ids=sequence_ids)
    return [found[pk] for pk in sequence_ids]


async def _mailbox_usage(actor: Actor | None, mailbox_ids: list[int]) -> list[limits.Usage]:
    """Today's Usage of each mailbox (rows the viewer was allowed to load)."""
    if actor is None:
        return [limits.Usage(0, 0) for _ in mailbox_ids]
    found = await limits.usage(mailbox_ids, now=actor.now())
    return [found.get(pk, limits.Usage(0, 0)) for pk in mailbox_ids]
