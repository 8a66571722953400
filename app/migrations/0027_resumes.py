from tortoise import fields, migrations
from tortoise.migrations import operations as ops

from app.prospects.models import ChangeCause


class Migration(migrations.Migration):
    """Pauses that end by themselves (contract part 60): an enrollment's
    ``resumes_at``, with a partial index for the scheduler's look for pauses that
    have ended (its size follows the pauses that end by themselves, so a pass
    with none to resume reads nothing); an auto-reply's ``returns_at``; and the
    OUT_OF_OFFICE cause, which only the enum's description lists. Nullable
    columns without a default: PostgreSQL adds them without rewriting the tables."""

    dependencies = [('models', '0026_threads')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Enrollment',
            name='resumes_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.RunSQL(
            'CREATE INDEX "enrollment_resumes_at_partial" ON "enrollment" ("resumes_at", "id") '
            'WHERE "resumes_at" IS NOT NULL',
            reverse_sql='DROP INDEX "enrollment_resumes_at_partial"',
        ),
        ops.AddField(
            model_name='Message',
            name='returns_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AlterField(
            model_name='StatusChange',
            name='cause',
            field=fields.CharEnumField(description='USER: USER\nACTION: ACTION\nAUTOMATION: AUTOMATION\nSCHEDULER: SCHEDULER\nINBOUND: INBOUND\nOUT_OF_OFFICE: OUT_OF_OFFICE', enum_type=ChangeCause, max_length=16),
        ),
    ]
