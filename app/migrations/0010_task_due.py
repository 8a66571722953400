from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0009_event_log')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Task',
            name='due_announced_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddIndex(
            model_name='Task',
            index=Index(fields=['due_announced_at', 'due_at']),
        ),
    ]
