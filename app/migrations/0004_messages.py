from tortoise import migrations
from tortoise.migrations import operations as ops
from app.messaging.models import BounceType, Direction, MessageState
from app.prospects.models import Channel
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0003_status_enrollment_outcome')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Message',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('models.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('prospect', fields.ForeignKeyField('models.Prospect', source_field='prospect_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('enrollment', fields.ForeignKeyField('models.Enrollment', source_field='enrollment_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('step', fields.ForeignKeyField('models.SequenceStep', source_field='step_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('channel', fields.CharEnumField(description='EMAIL: EMAIL\nSMS: SMS\nPHONE: PHONE', enum_type=Channel, max_length=8)),
                ('direction', fields.CharEnumField(description='OUTBOUND: OUTBOUND\nINBOUND: INBOUND', enum_type=Direction, max_length=8)),
                ('state', fields.CharEnumField(description='QUEUED: QUEUED\nSENDING: SENDING\nSENT: SENT\nDELIVERED: DELIVERED\nFAILED: FAILED\nBOUNCED: BOUNCED\nUNCERTAIN: UNCERTAIN\nCANCELLED: CANCELLED\nRECEIVED: RECEIVED', enum_type=MessageState, max_length=16)),
                ('to_address', fields.CharField(null=True, max_length=320)),
                ('from_address', fields.CharField(null=True, max_length=320)),
                ('subject', fields.TextField(null=True, unique=False)),
                ('body', fields.TextField(unique=False)),
                ('external_id', fields.CharField(null=True, db_index=True, max_length=255)),
                ('attempts', fields.IntField(default=0)),
                ('error', fields.TextField(null=True, unique=False)),
                ('bounce_type', fields.CharEnumField(null=True, description='HARD: HARD\nSOFT: SOFT', enum_type=BounceType, max_length=8)),
                ('auto_reply', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('received_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('next_attempt_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('lease_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('send_key', fields.CharField(null=True, unique=True, max_length=64)),
            ],
            options={'table': 'message', 'app': 'models', 'indexes': [Index(fields=['state', 'next_attempt_at']), Index(fields=['organization_id', 'prospect_id'])], 'pk_attr': 'id', 'table_description': "One message. A step's message is created once, under ``send_key``"},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Enrollment',
            name='waiting_task_id',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='Task',
            name='enrollment',
            field=fields.ForeignKeyField('models.Enrollment', source_field='enrollment_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL),
        ),
        ops.AddField(
            model_name='Task',
            name='step',
            field=fields.ForeignKeyField('models.SequenceStep', source_field='step_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL),
        ),
    ]
