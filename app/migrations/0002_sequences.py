from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from app.prospects.models import ChangeCause
from app.sequences.models import StepType
from app.sequences.state import Stage
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Sequence',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('models.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=200)),
                ('active', fields.BooleanField(default=False)),
                ('stop_on_reply', fields.BooleanField(default=True)),
                ('unresponsive_after_seconds', fields.IntField(default=604800)),
                ('send_window', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sequence', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SequenceStep',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('models.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('sequence', fields.ForeignKeyField('models.Sequence', source_field='sequence_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('position', fields.IntField()),
                ('type', fields.CharEnumField(description='EMAIL: EMAIL\nSMS: SMS\nCALL: CALL\nTASK: TASK', enum_type=StepType, max_length=8)),
                ('delay_seconds', fields.IntField(default=0)),
                ('subject', fields.TextField(null=True, unique=False)),
                ('body', fields.TextField(unique=False)),
                ('deleted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sequence_step', 'app': 'models', 'pk_attr': 'id', 'table_description': 'One step. Removing a step only marks it removed (``deleted_at``): the'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Enrollment',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('models.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('prospect', fields.ForeignKeyField('models.Prospect', source_field='prospect_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('sequence', fields.ForeignKeyField('models.Sequence', source_field='sequence_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('stage', fields.CharEnumField(description='NOT_STARTED: NOT_STARTED\nSTARTED: STARTED\nAPPROACHING: APPROACHING\nPAUSED: PAUSED\nREPLIED: REPLIED\nSUCCESS: SUCCESS\nNOT_INTERESTED: NOT_INTERESTED\nUNRESPONSIVE: UNRESPONSIVE\nBOUNCED: BOUNCED\nOPTED_OUT: OPTED_OUT\nUNSUBSCRIBED: UNSUBSCRIBED\nREMOVED: REMOVED\nFAILED: FAILED', enum_type=Stage, max_length=16)),
                ('paused_stage', fields.CharEnumField(null=True, description='NOT_STARTED: NOT_STARTED\nSTARTED: STARTED\nAPPROACHING: APPROACHING\nPAUSED: PAUSED\nREPLIED: REPLIED\nSUCCESS: SUCCESS\nNOT_INTERESTED: NOT_INTERESTED\nUNRESPONSIVE: UNRESPONSIVE\nBOUNCED: BOUNCED\nOPTED_OUT: OPTED_OUT\nUNSUBSCRIBED: UNSUBSCRIBED\nREMOVED: REMOVED\nFAILED: FAILED', enum_type=Stage, max_length=16)),
                ('paused_due_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('current_step', fields.ForeignKeyField('models.SequenceStep', source_field='current_step_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('due_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_step_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_email_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('enrolled_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('active_key', fields.CharField(null=True, unique=True, max_length=64)),
            ],
            options={'table': 'enrollment', 'app': 'models', 'indexes': [Index(fields=['organization_id', 'sequence_id']), Index(fields=['due_at'])], 'pk_attr': 'id', 'table_description': 'A prospect in a sequence. ``active_key`` is set while unfinished, and unique:'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StageChange',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('models.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('enrollment', fields.ForeignKeyField('models.Enrollment', source_field='enrollment_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('from_stage', fields.CharEnumField(null=True, description='NOT_STARTED: NOT_STARTED\nSTARTED: STARTED\nAPPROACHING: APPROACHING\nPAUSED: PAUSED\nREPLIED: REPLIED\nSUCCESS: SUCCESS\nNOT_INTERESTED: NOT_INTERESTED\nUNRESPONSIVE: UNRESPONSIVE\nBOUNCED: BOUNCED\nOPTED_OUT: OPTED_OUT\nUNSUBSCRIBED: UNSUBSCRIBED\nREMOVED: REMOVED\nFAILED: FAILED', enum_type=Stage, max_length=16)),
                ('to_stage', fields.CharEnumField(description='NOT_STARTED: NOT_STARTED\nSTARTED: STARTED\nAPPROACHING: APPROACHING\nPAUSED: PAUSED\nREPLIED: REPLIED\nSUCCESS: SUCCESS\nNOT_INTERESTED: NOT_INTERESTED\nUNRESPONSIVE: UNRESPONSIVE\nBOUNCED: BOUNCED\nOPTED_OUT: OPTED_OUT\nUNSUBSCRIBED: UNSUBSCRIBED\nREMOVED: REMOVED\nFAILED: FAILED', enum_type=Stage, max_length=16)),
                ('cause', fields.CharField(max_length=16)),
                ('reason', fields.CharField(null=True, max_length=64)),
                ('actor', fields.ForeignKeyField('models.User', source_field='actor_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'stage_change', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AlterField(
            model_name='StatusChange',
            name='cause',
            field=fields.CharEnumField(description='USER: USER\nACTION: ACTION\nAUTOMATION: AUTOMATION\nSCHEDULER: SCHEDULER\nINBOUND: INBOUND', enum_type=ChangeCause, max_length=16),
        ),
    ]
