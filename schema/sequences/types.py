"""Sequence, step and enrollment types (contract part 20)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from tortoise.queryset import QuerySet

from app.sequences import models, read, stage_names
from app.sequences.windows import SendWindow as SendWindowValue
from schema.accounts.types import User, load_user
from schema.context import Info
from schema.enums import ChangeCause, EnrollmentStage, StepType
from schema.node import Node, decode_ids, global_id
from schema.pagination import Connection, paginate, paginate_loaded
from schema.prospects.types import Prospect, load_prospect


@strawberry.enum
class Weekday(Enum):
    MON = "MON"
    TUE = "TUE"
    WED = "WED"
    THU = "THU"
    FRI = "FRI"
    SAT = "SAT"
    SUN = "SUN"


@strawberry.type(description="Hours in which steps may run; a step due outside them waits for the next opening.")
class SendWindow:
    days: list[Weekday]
    start: str = strawberry.field(description="HH:MM, inclusive.")
    end: str = strawberry.field(description="HH:MM, exclusive.")
    time_zone: str | None = strawberry.field(
        description="IANA zone; null means the prospect's zone (else the organization's)."
    )

    @classmethod
    def of(cls, value: SendWindowValue) -> SendWindow:
        return cls(
            days=[Weekday(d) for d in value.days],
            start=value.start.strftime("%H:%M"),
            end=value.end.strftime("%H:%M"),
            time_zone=value.time_zone,
        )


@strawberry.input
class EnrollmentFilter:
    sequence_ids: list[strawberry.ID] | None = None
    prospect_ids: list[strawberry.ID] | None = None
    stages: list[EnrollmentStage] | None = None
    finished: bool | None = None
    stage_names: list[str] | None = None


async def organization_stage_names(info: Info) -> dict[str, str]:
    """The viewer's organization's stage names, read once per request."""
    org = await info.context.loaders.organization.load(info.context.actor.organization_id)
    return org.stage_names if org is not None else {}


async def enrollments_query(info: Info, filter: EnrollmentFilter | None) -> QuerySet[models.Enrollment]:
    """The viewer's enrollments (an AGENT's: those of prospects it may work), filtered."""
    given = filter or EnrollmentFilter()
    named = None
    if given.stage_names is not None:
        named = stage_names.named(given.stage_names, await organization_stage_names(info))
    return read.enrollments(
        info.context.actor,
        sequence_ids=decode_ids("Sequence", given.sequence_ids),
        prospect_ids=decode_ids("Prospect", given.prospect_ids),
        stages=given.stages,
        named_stages=named,
        finished=given.finished,
    )


@strawberry.type
class Sequence(Node):
    row: strawberry.Private[models.Sequence]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return global_id("Sequence", self.row.id)

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field
    def active(self) -> bool:
        return self.row.active

    @strawberry.field(description="A reply (not an auto-reply) finishes the enrollment as REPLIED.")
    def stop_on_reply(self) -> bool:
        return self.row.stop_on_reply

    @strawberry.field(description="Default 604800 (one week).")
    def unresponsive_after_seconds(self) -> int:
        return self.row.unresponsive_after_seconds

    @strawberry.field
    def send_window(self) -> SendWindow | None:
        window = self.row.send_window
        return SendWindow.of(SendWindowValue.from_json(window)) if window else None

    @strawberry.field
    async def steps(self, info: Info) -> list[SequenceStep]:
        return [SequenceStep(row=s) for s in await info.context.loaders.steps_by_sequence.load(self.row.id)]

    @strawberry.field
    async def stats(self, info: Info) -> SequenceStats:
        found = await info.context.loaders.sequence_stats.load(self.row.id)
        by_stage = found.by_stage or {}
        return SequenceStats(
            enrolled=found.enrolled,
            by_stage=[StageCount(stage=EnrollmentStage(s), count=c) for s, c in sorted(by_stage.items())],
            sent=found.sent,
            replied=by_stage.get("REPLIED", 0),
            bounced=by_stage.get("BOUNCED", 0),
            opted_out=by_stage.get("OPTED_OUT", 0) + by_stage.get("UNSUBSCRIBED", 0),
        )

    @strawberry.field
    async def enrollments(
        self,
        info: Info,
        filter: EnrollmentFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Enrollment]:
        query = (await enrollments_query(info, filter)).filter(sequence_id=self.row.id)
        return await paginate(query, first, after, lambda r: Enrollment(row=r))


@strawberry.type
class StageCount:
    stage: EnrollmentStage
    count: int


@strawberry.type
class SequenceStats:
    enrolled: int
    by_stage: list[StageCount]
    sent: int
    replied: int
    bounced: int
    opted_out: int


@strawberry.type
class SequenceStep(Node):
    row: strawberry.Private[models.SequenceStep]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return global_id("SequenceStep", self.row.id)

    @strawberry.field(description="1-based.")
    def position(self) -> int:
        return self.row.position

    @strawberry.field
    def type(self) -> StepType:
        return self.row.type

    @strawberry.field(description="Wait after the previous step ran (for step 1: after the enrollment started).")
    def delay_seconds(self) -> int:
        return self.row.delay_seconds

    @strawberry.field(description="Template; EMAIL only.")
    def subject(self) -> str | None:
        return self.row.subject

    @strawberry.field(description="Template with prospect fields, e.g. {{ first_name }}.")
    def body(self) -> str:
        return self.row.body

    @strawberry.field(
        description="EMAIL only: sent as a reply in the thread of the enrollment's previous email "
        "(Re: its subject, In-Reply-To and References) rather than as a new thread."
    )
    def thread_with_previous(self) -> bool:
        return self.row.thread_with_previous


@strawberry.type
class Enrollment(Node):
    row: strawberry.Private[models.Enrollment]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return global_id("Enrollment", self.row.id)

    @strawberry.field
    async def prospect(self, info: Info) -> Prospect:
        return await load_prospect(info, self.row.prospect_id)

    @strawberry.field
    async def sequence(self, info: Info) -> Sequence:
        row = await info.context.loaders.sequence.load(self.row.sequence_id)
        assert row is not None
        return Sequence(row=row)

    @strawberry.field
    def stage(self) -> EnrollmentStage:
        return self.row.stage

    @strawberry.field(
        description="The stage in the organization's words: its stageNames entry, else the stage's own name. Per enrollment, so one prospect in two sequences can be Active in one and Paused in the other."
    )
    async def stage_name(self, info: Info) -> str:
        return stage_names.name_of(self.row.stage, await organization_stage_names(info))

    @strawberry.field
    def finished(self) -> bool:
        return self.row.finished_at is not None

    @strawberry.field(description="The step that runs next; null when finished.")
    async def current_step(self, info: Info) -> SequenceStep | None:
        if self.row.finished_at is not None or self.row.current_step_id is None:
            return None
        row = await info.context.loaders.step.load(self.row.current_step_id)
        return SequenceStep(row=row) if row is not None else None

    @strawberry.field
    def next_step_at(self) -> datetime | None:
        return self.row.due_at if self.row.current_step_id is not None else None

    @strawberry.field
    def last_step_at(self) -> datetime | None:
        return self.row.last_step_at

    @strawberry.field(
        description="A pause that ends by itself: the enrollment resumes then (pauseEnrollmentsUntil, or an out-of-office reply with a return date)."
    )
    def resumes_at(self) -> datetime | None:
        return self.row.resumes_at

    @strawberry.field
    def enrolled_at(self) -> datetime:
        return self.row.enrolled_at

    @strawberry.field
    def finished_at(self) -> datetime | None:
        return self.row.finished_at

    @strawberry.field
    async def history(self, info: Info, first: int | None = None, after: str | None = None) -> Connection[StageChange]:
        rows = await info.context.loaders.stage_changes_by_enrollment.load(self.row.id)
        return paginate_loaded(rows, first, after, lambda r: StageChange(row=r))


@strawberry.type
class StageChange(Node):
    row: strawberry.Private[models.StageChange]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return global_id("StageChange", self.row.id)

    @strawberry.field
    async def enrollment(self, info: Info) -> Enrollment:
        row = await info.context.loaders.enrollment.load(self.row.enrollment_id)
        assert row is not None
        return Enrollment(row=row)

    @strawberry.field(name="from")
    def from_(self) -> EnrollmentStage | None:
        return self.row.from_stage

    @strawberry.field
    def to(self) -> EnrollmentStage:
        return self.row.to_stage

    @strawberry.field
    def cause(self) -> ChangeCause:
        return ChangeCause(self.row.cause)

    @strawberry.field(
        description="Machine-readable slug, e.g. replied, bounced_hard, unsubscribe_link, sms_stop, timeout, steps_done, manual."
    )
    def reason(self) -> str | None:
        return self.row.reason

    @strawberry.field
    async def actor(self, info: Info) -> User | None:
        return await load_user(info, self.row.actor_id)

    @strawberry.field
    def at(self) -> datetime:
        return self.row.at
