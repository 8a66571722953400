"""Query fields of sequences: sequences and enrollments."""

from __future__ import annotations

import strawberry

from app.sequences import models as sequences
from app.sequences import read
from schema.context import Info
from schema.node import Node, NodeReader
from schema.pagination import Connection, paginate
from schema.prospects.queries import prospect_data
from schema.sequences.types import Enrollment, EnrollmentFilter, Sequence, SequenceStep, StageChange, enrollments_query

_enrollment = prospect_data(sequences.Enrollment, Enrollment)


async def _sequence(info: Info, pk: int) -> Node | None:
    row = await read.sequences(info.context.actor.organization_id).get_or_none(id=pk)
    return Sequence(row=row) if row else None


async def _step(info: Info, pk: int) -> Node | None:
    row = await read.steps(info.context.actor.organization_id).get_or_none(id=pk)
    return SequenceStep(row=row) if row else None


async def _stage_change(info: Info, pk: int) -> Node | None:
    row = await read.stage_changes(info.context.actor).get_or_none(id=pk)
    return StageChange(row=row) if row else None


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
        query = read.sequences(info.context.actor.organization_id)
        return await paginate(query, first, after, lambda r: Sequence(row=r))


@strawberry.type
class EnrollmentQueries:
    """Apart from SequenceQueries so that `enrollments` stays last in Query, where it was added."""

    @strawberry.field
    async def enrollments(
        self, info: Info, filter: EnrollmentFilter | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[Enrollment]:
        query = await enrollments_query(info, filter)
        return await paginate(query, first, after, lambda r: Enrollment(row=r))
