"""What a viewer may read of sequences: any member its organization's sequences
and live steps; enrollments and their stage changes only of the prospects it may
read (R1.3)."""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Sequence as Many

from tortoise.expressions import Subquery
from tortoise.queryset import QuerySet

from app.accounts.actor import Actor
from app.accounts.read import of_organization
from app.prospects.read import of_prospects
from app.sequences.models import Enrollment, Sequence, SequenceStep, StageChange
from app.sequences.state import Stage


def sequences(organization_id: int | None) -> QuerySet[Sequence]:
    return of_organization(Sequence, organization_id)


def steps(organization_id: int | None) -> QuerySet[SequenceStep]:
    """Live steps (a removed one is kept for the messages and tasks that name it)."""
    return of_organization(SequenceStep, organization_id).filter(deleted_at=None)


def enrollments(
    actor: Actor,
    *,
    sequence_ids: Many[int] | None = None,
    prospect_ids: Many[int] | None = None,
    stages: Many[Stage] | None = None,
    named_stages: Collection[Stage] | None = None,
    finished: bool | None = None,
) -> QuerySet[Enrollment]:
    """The enrollments the viewer may read, narrowed by each filter given
    (``named_stages``: the stages that carry the names asked for, from
    ``app.sequences.stage_names.named``; with ``stages`` too, both must hold)."""
    query = of_prospects(actor, Enrollment)
    if sequence_ids is not None:
        query = query.filter(sequence_id__in=sequence_ids)
    if prospect_ids is not None:
        query = query.filter(prospect_id__in=prospect_ids)
    if stages is not None:
        query = query.filter(stage__in=[s.value for s in stages])
    if named_stages is not None:
        query = query.filter(stage__in=[s.value for s in named_stages])
    if finished is not None:
        query = query.filter(finished_at__isnull=not finished)
    return query


def stage_changes(actor: Actor) -> QuerySet[StageChange]:
    """The stage changes of the enrollments the viewer may read."""
    return of_organization(StageChange, actor.organization_id).filter(
        enrollment_id__in=Subquery(enrollments(actor).values("id"))
    )
