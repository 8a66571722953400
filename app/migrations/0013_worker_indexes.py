from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """Partial indexes for what the worker looks for many times a second, so each
    look costs the same however long the history grows: events not yet given a
    cursor (the sequencer scanned every numbered event to find them: 10 ms a pass
    at 20,000 events), and open tasks whose due time is not yet announced."""

    dependencies = [('models', '0012_distribution')]

    initial = False

    operations = [
        ops.RunSQL(
            'CREATE INDEX "event_unsequenced" ON "event" ("id") WHERE "seq" IS NULL',
            reverse_sql='DROP INDEX "event_unsequenced"',
        ),
        ops.RunSQL(
            'CREATE INDEX "task_due_unannounced" ON "task" ("due_at", "id") '
            'WHERE "due_announced_at" IS NULL AND "completed_at" IS NULL',
            reverse_sql='DROP INDEX "task_due_unannounced"',
        ),
    ]
