from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """The scheduler's due index covers only enrollments that have a due time, so
    its size follows the running enrollments, not every enrollment ever made."""

    dependencies = [('models', '0005_conversation_state')]

    initial = False

    operations = [
        ops.RemoveIndex(
            model_name='Enrollment',
            name=None,
            fields=['due_at'],
        ),
        ops.RunSQL(
            'CREATE INDEX "enrollment_due_at_partial" ON "enrollment" ("due_at", "id") WHERE "due_at" IS NOT NULL',
            reverse_sql='DROP INDEX "enrollment_due_at_partial"',
        ),
    ]
