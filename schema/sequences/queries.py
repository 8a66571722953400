"""Query fields of sequences: sequences and enrollments."""

from __future__ import annotations

import strawberry

from app.sequences import models as sequences
from schema.context import Info
from schema.node import Node, NodeReader
from schema.pagination import Connection, paginate
from schema.prospects.queries import prospect_data
from schema.sequences.types import Enrollment, EnrollmentFilter, Sequence, SequenceStep, StageChange, enrollments_query

_enrollment = prospect_data(sequences.Enrollment, Enrollment)


async def _sequence(info: Info, pk: int) -> Node | None:
    row = await sequences.Sequence.get_or_none(id=pk, organization_id=info.context.actor.organization_id)
    return Sequence(row=row) if row else None


async def _step(info: Info, pk: int) -> Node | None:
    row = await sequences.SequenceStep.get_or_none(
        id=pk, organization_id=info.context.actor.organization_id, deleted_at=None
    )
    return SequenceStep(row=row) if row else None


async def _stage_change(info: Info, pk: int) -> Node | None:
    change = await sequences.StageChange.get_or_none(id=pk, organization_id=info.context.actor.organization_id)
    enrollment = None if change is None else await _enrollment(info, change.enrollment_id)
    return StageChange(row=change) if change and enrollment else None


NODES: dict[str, NodeReader] = {
    "Sequence": _sequence,
    "SequenceStep": _step,
    "Enrollment": _enrollment,
    "StageChange": _stage_change,
}


@strawberry.type
class SequenceQueries:
    @strawberry.field
    async def sequences(self, info: Info, first: int | None = None, after: str | None = None) -> Connection[Sequence]:
        query = sequences.Sequence.filter(organization_id=info.context.actor.organization_id)
        return await paginate(query, first, after, lambda r: Sequence(row=r))


@strawberry.type
class EnrollmentQueries:
    """Apart from SequenceQueries so that `enrollments` stays last in Query, where it was added."""

    @strawberry.field
    async def enrollments(
        self, info: Info, filter: EnrollmentFilter | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[Enrollment]:
        query = enrollments_query(info, filter)
        return await paginate(query, first, after, lambda r: Enrollment(row=r))
