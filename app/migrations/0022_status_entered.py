from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """When each prospect entered its status, so that a status's max assignment
    time counts from the later of entering the status and being assigned (seeds
    003/004: the time a lead may stay in this status). Filled from the status
    history: the latest change into the prospect's present status (one grouped
    pass over the history, joined); a prospect without one (a row written around
    the history) counts from its assignment, else its creation. Nullable, without
    a default: PostgreSQL adds it without rewriting the table; the code sets it
    with every status it writes."""

    dependencies = [('models', '0021_rule_statuses')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Prospect',
            name='status_entered_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.RunSQL(
            [
                'UPDATE "prospect" SET "status_entered_at" = "entered"."at" FROM ('
                'SELECT "prospect_id", "to_status_id", MAX("at") AS "at" FROM "status_change" '
                'GROUP BY "prospect_id", "to_status_id"'
                ') AS "entered" WHERE "entered"."prospect_id" = "prospect"."id" '
                'AND "entered"."to_status_id" = "prospect"."status_id"',
                'UPDATE "prospect" SET "status_entered_at" = COALESCE("assigned_at", "created_at") '
                'WHERE "status_entered_at" IS NULL',
            ],
            reverse_sql=ops.RunSQL.noop,
        ),
    ]
