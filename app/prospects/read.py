"""What a viewer may read of prospects (R1.3): an AGENT the prospects it may work
(its own and unassigned ones) and their rows; managers and admins every one of
the organization. Filters narrow what the viewer may read, never widen it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from tortoise.expressions import Subquery
from tortoise.models import Model
from tortoise.queryset import QuerySet

from app.accounts.actor import Actor
from app.accounts.read import of_organization
from app.errors import Field, InvalidInput
from app.prospects import service
from app.prospects.models import ConversationState, Prospect, Task
from app.sequences.models import Enrollment
from app.sequences.state import Stage
from app.workflows.models import SystemStatus

M = TypeVar("M", bound=Model)


def of_prospects(actor: Actor, model: type[M]) -> QuerySet[M]:
    """Rows of ``model`` that each belong to a prospect (activities, status changes,
    tasks, enrollments, messages): those of the prospects the viewer may read."""
    return service.of_visible(actor, of_organization(model, actor.organization_id))


def prospects(
    actor: Actor,
    *,
    status_ids: Sequence[int] | None = None,
    workflow_ids: Sequence[int] | None = None,
    system_statuses: Sequence[SystemStatus] | None = None,
    owner_ids: Sequence[int] | None = None,
    unassigned: bool | None = None,
    do_not_contact: bool | None = None,
    search: str | None = None,
    conversation_states: Sequence[ConversationState] | None = None,
    sequence_ids: Sequence[int] | None = None,
    enrollment_stages: Sequence[Stage] | None = None,
    external_ids: Sequence[str] | None = None,
) -> QuerySet[Prospect]:
    """The prospects the viewer may read, narrowed by each filter given (``search``:
    already normalized, a substring of the prospect's search text; ``external_ids``:
    as ``external_ids`` cleans them)."""
    query = service.visible(actor)
    if external_ids is not None:
        query = query.filter(external_id__in=external_ids)
    if status_ids is not None:
        query = query.filter(status_id__in=status_ids)
    if workflow_ids is not None:
        query = query.filter(status__workflow_id__in=workflow_ids)
    if system_statuses is not None:
        query = query.filter(status__system_status__in=[s.value for s in system_statuses])
    if owner_ids is not None:
        query = query.filter(owner_id__in=owner_ids)
    if unassigned is not None:
        query = query.filter(owner_id__isnull=unassigned)
    if do_not_contact is not None:
        query = query.filter(do_not_contact=do_not_contact)
    if search:
        query = query.filter(search_text__contains=search)
    if conversation_states is not None:
        query = query.filter(conversation_state__in=[c.value for c in conversation_states])
    enrolled = of_organization(Enrollment, actor.organization_id)
    if sequence_ids is not None:
        query = query.filter(id__in=Subquery(enrolled.filter(sequence_id__in=sequence_ids).values("prospect_id")))
    if enrollment_stages is not None:
        stages = [s.value for s in enrollment_stages]
        query = query.filter(id__in=Subquery(enrolled.filter(stage__in=stages).values("prospect_id")))
    return query


MAX_FILTER_EXTERNAL_IDS = service.MAX_BATCH
"""As many as one batch of prospects may carry: a lookup after an import's batch."""


def external_ids(values: Sequence[str], field: Field) -> list[str]:
    """A filter's externalIds as they are stored (trimmed), at most MAX_FILTER_EXTERNAL_IDS."""
    if len(values) > MAX_FILTER_EXTERNAL_IDS:
        raise InvalidInput(f"At most {MAX_FILTER_EXTERNAL_IDS} externalIds.", field)
    return [value.strip() for value in values]


def tasks(
    actor: Actor,
    *,
    assignee_ids: Sequence[int] | None = None,
    is_open: bool | None = None,
    due_before: datetime | None = None,
) -> QuerySet[Task]:
    """The tasks of the prospects the viewer may read; ``is_open``: true only open
    ones, false only completed ones."""
    query = service.visible_tasks(actor)
    if assignee_ids is not None:
        query = query.filter(assignee_id__in=assignee_ids)
    if is_open is not None:
        query = query.filter(completed_at__isnull=is_open)
    if due_before is not None:
        query = query.filter(due_at__lt=due_before)
    return query
