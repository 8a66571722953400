from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0011_live')]

    initial = False

    operations = [
        ops.RemoveIndex(
            model_name='Prospect',
            name=None,
            fields=['organization_id', 'owner_id'],
        ),
        ops.AddField(
            model_name='Prospect',
            name='pullable_after',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddIndex(
            model_name='Prospect',
            index=Index(fields=['organization_id', 'owner_id', 'created_at']),
        ),
    ]
