from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from app.events.models import EventType
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0008_receipt_key')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Event',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('models.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('seq', fields.BigIntField(null=True, unique=True)),
                ('type', fields.CharEnumField(description='PROSPECT_CREATED: PROSPECT_CREATED\nPROSPECT_UPDATED: PROSPECT_UPDATED\nPROSPECT_DELETED: PROSPECT_DELETED\nSTATUS_CHANGED: STATUS_CHANGED\nSTAGE_CHANGED: STAGE_CHANGED\nMESSAGE_SENT: MESSAGE_SENT\nMESSAGE_RECEIVED: MESSAGE_RECEIVED\nMESSAGE_BOUNCED: MESSAGE_BOUNCED\nTASK_CREATED: TASK_CREATED\nTASK_DUE: TASK_DUE\nTASK_COMPLETED: TASK_COMPLETED\nASSIGNMENT_CHANGED: ASSIGNMENT_CHANGED', enum_type=EventType, max_length=24)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('prospect_id', fields.IntField(null=True)),
                ('status_change_id', fields.IntField(null=True)),
                ('stage_change_id', fields.IntField(null=True)),
                ('message_id', fields.IntField(null=True)),
                ('task_id', fields.IntField(null=True)),
                ('payload', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ],
            options={'table': 'event', 'app': 'models', 'indexes': [Index(fields=['organization_id', 'seq'])], 'pk_attr': 'id', 'table_description': 'One entry of the append-only event log of an organization (R10.1), written in'},
            bases=['Model'],
        ),
    ]
