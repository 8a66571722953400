from datetime import UTC, datetime
from typing import Any

from tortoise import migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

# Written out here (not imported from app.sequences), so that the migration keeps
# making the same rows whatever that code becomes.
_RUNNING = "('STARTED', 'APPROACHING')"
_INACTIVE = 'SELECT "id" FROM "sequence" WHERE NOT "active"'


async def pause_in_inactive_sequences(apps: Any, schema_editor: Any) -> None:
    """Running enrollments of inactive sequences, from before deactivating a sequence
    paused them (0023), are paused as a deactivation pauses them now (reason
    ``sequence_inactive``, which reactivating the sequence resumes; their due time
    kept for then): until now they sat past due in the scheduler's due index,
    read and passed over by every pass (~50 ms a pass per 100,000). Their stage
    change is recorded (USER, as the deactivation's); no event is sent for it."""
    client = schema_editor.client
    mark = "$1" if client.capabilities.dialect == "postgres" else "?"
    running = f'"stage" IN {_RUNNING} AND "finished_at" IS NULL AND "sequence_id" IN ({_INACTIVE})'
    await client.execute_query(
        'INSERT INTO "stage_change" ("organization_id", "enrollment_id", "from_stage", "to_stage", "cause", '
        f'"reason", "actor_id", "at") SELECT "organization_id", "id", "stage", \'PAUSED\', \'USER\', '
        f'\'sequence_inactive\', NULL, {mark} FROM "enrollment" WHERE {running} ORDER BY "id"',
        [datetime.now(UTC)],
    )
    await client.execute_query(
        'UPDATE "enrollment" SET "paused_stage" = "stage", "paused_due_at" = "due_at", '
        '"paused_reason" = \'sequence_inactive\', "resumes_at" = NULL, "due_at" = NULL, "stage" = \'PAUSED\' '
        f"WHERE {running}"
    )


class Migration(migrations.Migration):
    """Reads that cost the same however big the organization, or the one before it,
    grows (issue 24): each per-prospect list a page reads through a DataLoader
    (enrollments, activities, status history, tasks) and each enrollment's stage
    changes and messages by their parent's id; and each page of an organization's
    rows in id order (prospects, tasks, enrollments, suppressions) by
    (organization_id, id), so that an organization created after a big one reads
    its own rows only, under a generic plan too. Building them on PostgreSQL locks
    the tables against writes for the time it takes (about a second per 100,000 rows).

    And the scheduler's due index keeps only what can run: enrollments still
    running in an inactive sequence are paused (``pause_in_inactive_sequences``)."""

    dependencies = [("models", "0028_mailbox_identity")]

    initial = False

    operations = [
        ops.AddIndex(model_name="Enrollment", index=Index(fields=["prospect_id"])),
        ops.AddIndex(model_name="Enrollment", index=Index(fields=["organization_id", "id"])),
        ops.AddIndex(model_name="Activity", index=Index(fields=["prospect_id"])),
        ops.AddIndex(model_name="StatusChange", index=Index(fields=["prospect_id"])),
        ops.AddIndex(model_name="Task", index=Index(fields=["prospect_id"])),
        ops.AddIndex(model_name="Task", index=Index(fields=["organization_id", "id"])),
        ops.AddIndex(model_name="StageChange", index=Index(fields=["enrollment_id"])),
        ops.AddIndex(model_name="Message", index=Index(fields=["enrollment_id"])),
        ops.AddIndex(model_name="Prospect", index=Index(fields=["organization_id", "id"])),
        ops.AddIndex(model_name="Suppression", index=Index(fields=["organization_id", "id"])),
        ops.RunPython(pause_in_inactive_sequences, ops.RunPython.noop),
    ]
