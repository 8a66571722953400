import base64
import json
import logging
from datetime import UTC, datetime
from typing import Any

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.migrations.constraints import UniqueConstraint

logger = logging.getLogger("leadline.migrations")

# What this migration writes is copied here from the code of its day (the merge
# rules of app/prospects/merge.py, the active key of app/sequences/lifecycle.py,
# the event payloads), so that it keeps making the same rows whatever that code becomes.
FILLED = ("first_name", "last_name", "phone", "company", "title", "time_zone", "external_id", "owner_id",
          "assigned_at", "pullable_after", "unsubscribed_at", "contact_made_at")
CHILDREN = ("activity", "status_change", "task", "message", "suppression")
CHUNK = 10_000


def _gid(type_name: str, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _api_name(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(part.title() for part in rest)


def _differs(name: str, new: Any, old: Any) -> bool:
    if name in ("custom_fields", "opted_out_channels"):
        return _json(new) != _json(old)
    if name == "do_not_contact":
        return bool(new) != bool(old)
    return new != old


def _merged(kept: dict[str, Any], others: list[dict[str, Any]]) -> dict[str, Any]:
    """The kept row's values once the others are merged into it: its empty fields
    filled from the oldest other that has them, custom fields it lacks added,
    consent united, contact history summed up."""
    out = {name: kept[name] for name in FILLED}
    custom = dict(_json(kept["custom_fields"]) or {})
    channels = set(_json(kept["opted_out_channels"]) or [])
    do_not_contact = bool(kept["do_not_contact"])
    attempts = kept["contact_attempts"]
    last_attempt = kept["last_contact_attempt_at"]
    state, last_message = kept["conversation_state"], kept["last_message_at"]
    for other in others:
        for name in FILLED:
            if out[name] is None and other[name] is not None:
                out[name] = other[name]
        for key, value in (_json(other["custom_fields"]) or {}).items():
            custom.setdefault(key, value)
        channels |= set(_json(other["opted_out_channels"]) or [])
        do_not_contact = do_not_contact or bool(other["do_not_contact"])
        attempts += other["contact_attempts"]
        if other["last_contact_attempt_at"] is not None and (last_attempt is None or other["last_contact_attempt_at"] > last_attempt):
            last_attempt = other["last_contact_attempt_at"]
        if other["last_message_at"] is not None and (last_message is None or other["last_message_at"] > last_message):
            state, last_message = other["conversation_state"], other["last_message_at"]
    if out["owner_id"] != kept["owner_id"]:
        out["assigned_at"] = next(o["assigned_at"] for o in others if o["owner_id"] == out["owner_id"])
    searched = [out["first_name"], out["last_name"], kept["email"], out["phone"], out["company"]]
    return out | {
        "custom_fields": json.dumps(custom),
        "opted_out_channels": json.dumps(sorted(channels)),
        "do_not_contact": do_not_contact,
        "contact_attempts": attempts,
        "last_contact_attempt_at": last_attempt,
        "conversation_state": state,
        "last_message_at": last_message,
        "search_text": " ".join(p for p in searched if p).lower(),
    }


async def lower_emails(client: Any, mark: Any) -> None:
    """Emails lower-cased as Python does it (SQL's LOWER leaves non-ASCII letters as
    they are on SQLite), a chunk of prospects at a time."""
    after = 0
    while True:
        rows = await client.execute_query_dict(
            f'SELECT "id", "email" FROM "prospect" WHERE "id" > {mark(1)} ORDER BY "id" LIMIT {CHUNK}', [after]
        )
        if not rows:
            return
        for row in rows:
            if row["email"] is not None and row["email"] != row["email"].lower():
                await client.execute_query(
                    f'UPDATE "prospect" SET "email" = {mark(1)} WHERE "id" = {mark(2)}', [row["email"].lower(), row["id"]]
                )
        after = rows[-1]["id"]


async def merge_duplicates(apps: Any, schema_editor: Any) -> None:
    client = schema_editor.client
    postgres = client.capabilities.dialect == "postgres"

    def mark(n: int) -> str:
        return f"${n}" if postgres else "?"

    def marks(count: int) -> str:
        return ", ".join(mark(n) for n in range(1, count + 1))

    await lower_emails(client, mark)
    pairs = await client.execute_query_dict(
        'SELECT p."id" AS "merged", d."kept" FROM "prospect" p JOIN ('
        'SELECT "organization_id", "email", MIN("id") AS "kept" FROM "prospect" WHERE "email" IS NOT NULL '
        'GROUP BY "organization_id", "email" HAVING COUNT(*) > 1'
        ') d ON p."organization_id" = d."organization_id" AND p."email" = d."email" '
        'WHERE p."id" <> d."kept" ORDER BY d."kept", p."id"'
    )
    groups: dict[int, list[int]] = {}
    for pair in pairs:
        groups.setdefault(pair["kept"], []).append(pair["merged"])
    now = datetime.now(UTC)
    for kept_id, merged_ids in groups.items():
        rows = {
            row["id"]: row
            for row in await client.execute_query_dict(
                f'SELECT * FROM "prospect" WHERE "id" IN ({marks(len(merged_ids) + 1)})', [kept_id, *merged_ids]
            )
        }
        kept = rows[kept_id]
        for merged_id in merged_ids:
            await _move_enrollments(client, mark, kept, merged_id, now)
            for table in CHILDREN:
                await client.execute_query(
                    f'UPDATE "{table}" SET "prospect_id" = {mark(1)} WHERE "prospect_id" = {mark(2)}', [kept_id, merged_id]
                )
            await client.execute_query(f'DELETE FROM "prospect" WHERE "id" = {mark(1)}', [merged_id])
            await _event(client, marks, kept["organization_id"], "PROSPECT_DELETED", now, merged_id, {})
        values = _merged(kept, [rows[merged_id] for merged_id in merged_ids])
        assignments = ", ".join(f'"{name}" = {mark(n)}' for n, name in enumerate(values, 1))
        await client.execute_query(
            f'UPDATE "prospect" SET {assignments} WHERE "id" = {mark(len(values) + 1)}', [*values.values(), kept_id]
        )
        changed = sorted(_api_name(name) for name in values if name != "search_text" and _differs(name, values[name], kept[name]))
        if changed:
            await _event(client, marks, kept["organization_id"], "PROSPECT_UPDATED", now, kept_id, {"fields": changed})
    if groups:
        merged = sum(len(ids) for ids in groups.values())
        logger.warning(
            "0018_one_person: merged %d duplicate prospects (same organization and email) into %d kept records",
            merged, len(groups),
        )


async def _move_enrollments(client: Any, mark: Any, kept: dict[str, Any], merged_id: int, now: datetime) -> None:
    """The merged prospect's enrollments move to the kept one; an unfinished one in a
    sequence where the kept one has one unfinished too finishes REMOVED instead."""
    enrollments = await client.execute_query_dict(
        f'SELECT "id", "sequence_id", "stage" FROM "enrollment" WHERE "prospect_id" = {mark(1)} AND "finished_at" IS NULL',
        [merged_id],
    )
    for enrollment in enrollments:
        key = f"{kept['id']}:{enrollment['sequence_id']}"
        taken = await client.execute_query_dict(f'SELECT "id" FROM "enrollment" WHERE "active_key" = {mark(1)}', [key])
        if not taken:
            await client.execute_query(
                f'UPDATE "enrollment" SET "active_key" = {mark(1)} WHERE "id" = {mark(2)}', [key, enrollment["id"]]
            )
            continue
        await client.execute_query(
            'UPDATE "enrollment" SET "stage" = \'REMOVED\', "finished_at" = {0}, "due_at" = NULL, "active_key" = NULL, '
            '"paused_stage" = NULL, "paused_due_at" = NULL WHERE "id" = {1}'.format(mark(1), mark(2)),
            [now, enrollment["id"]],
        )
        await client.execute_query(
            f'UPDATE "message" SET "state" = \'CANCELLED\', "error" = {mark(1)} '
            f'WHERE "enrollment_id" = {mark(2)} AND "state" = \'QUEUED\'',
            ["the enrollment finished before it was sent", enrollment["id"]],
        )
        [change] = await client.execute_query_dict(
            'INSERT INTO "stage_change" ("organization_id", "enrollment_id", "from_stage", "to_stage", "cause", '
            '"reason", "actor_id", "at") VALUES ({0}, {1}, {2}, \'REMOVED\', \'USER\', \'merged\', NULL, {3}) '
            'RETURNING "id"'.format(mark(1), mark(2), mark(3), mark(4)),
            [kept["organization_id"], enrollment["id"], enrollment["stage"], now],
        )
        data = {
            "stageChange": {
                "id": _gid("StageChange", change["id"]),
                "enrollmentId": _gid("Enrollment", enrollment["id"]),
                "sequenceId": _gid("Sequence", enrollment["sequence_id"]),
                "fromStage": enrollment["stage"],
                "toStage": "REMOVED",
                "cause": "USER",
                "reason": "merged",
            }
        }
        await _event(
            client, lambda n: ", ".join(mark(i) for i in range(1, n + 1)), kept["organization_id"], "STAGE_CHANGED",
            now, merged_id, data, stage_change_id=change["id"],
        )
    await client.execute_query(
        f'UPDATE "enrollment" SET "prospect_id" = {mark(1)} WHERE "prospect_id" = {mark(2)}', [kept["id"], merged_id]
    )


async def _event(
    client: Any, marks: Any, organization_id: int, type_: str, at: datetime, prospect_id: int, data: dict[str, Any],
    *, stage_change_id: int | None = None,
) -> None:
    payload = {"type": type_, "at": at.isoformat(), "prospectId": _gid("Prospect", prospect_id), **data}
    await client.execute_query(
        f'INSERT INTO "event" ("organization_id", "type", "at", "prospect_id", "stage_change_id", "payload") '
        f"VALUES ({marks(6)})",
        [organization_id, type_, at, prospect_id, stage_change_id, json.dumps(payload, separators=(",", ":"))],
    )


class Migration(migrations.Migration):
    """One person, one record (R12.2): prospects' emails lower-cased, an external id,
    and unique (organization, email) and (organization, external_id).

    Existing prospects of one organization whose emails are equal once
    lower-cased are merged into the oldest (lowest id): the others' activities,
    history, tasks, messages, enrollments and suppressions move to it (an
    unfinished enrollment in a sequence it is in already finishes REMOVED,
    reason "merged"), its empty fields are filled from them, their consent
    joins its, and they are deleted (PROSPECT_DELETED; their earlier events
    keep their ids, as after a deletion). How many were merged is logged."""

    dependencies = [('models', '0017_suppressions')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Prospect',
            name='external_id',
            field=fields.CharField(null=True, max_length=200),
        ),
        ops.RunPython(merge_duplicates, ops.RunPython.noop),
        ops.AddConstraint(
            model_name='Prospect',
            constraint=UniqueConstraint(fields=('organization_id', 'email'), name=None),
        ),
        ops.AddConstraint(
            model_name='Prospect',
            constraint=UniqueConstraint(fields=('organization_id', 'external_id'), name=None),
        ),
    ]
