import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """An organization's own names for enrollment stages (Organization.stageNames):
    a JSON object, stage → name; existing organizations start with none."""

    dependencies = [('models', '0019_one_person')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Organization',
            name='stage_names',
            field=fields.JSONField(default=dict, db_default={}, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
    ]
