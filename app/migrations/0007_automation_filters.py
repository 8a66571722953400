from tortoise import migrations
from tortoise.migrations import operations as ops
from app.prospects.models import Channel
from app.sequences.state import Stage
from app.workflows.models import TriggerEvent
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0006_due_index')]

    initial = False

    operations = [
        ops.AlterField(
            model_name='AutomationRule',
            name='event',
            field=fields.CharEnumField(description='PROSPECT_CREATED: PROSPECT_CREATED\nSTATUS_ENTERED: STATUS_ENTERED\nMESSAGE_SENT: MESSAGE_SENT\nMESSAGE_RECEIVED: MESSAGE_RECEIVED\nENROLLMENT_STAGE_CHANGED: ENROLLMENT_STAGE_CHANGED', enum_type=TriggerEvent, max_length=32),
        ),
        ops.AddField(
            model_name='AutomationRule',
            name='channel',
            field=fields.CharEnumField(null=True, description='EMAIL: EMAIL\nSMS: SMS\nPHONE: PHONE', enum_type=Channel, max_length=8),
        ),
        ops.AddField(
            model_name='AutomationRule',
            name='stage',
            field=fields.CharEnumField(null=True, description='NOT_STARTED: NOT_STARTED\nSTARTED: STARTED\nAPPROACHING: APPROACHING\nPAUSED: PAUSED\nREPLIED: REPLIED\nSUCCESS: SUCCESS\nNOT_INTERESTED: NOT_INTERESTED\nUNRESPONSIVE: UNRESPONSIVE\nBOUNCED: BOUNCED\nOPTED_OUT: OPTED_OUT\nUNSUBSCRIBED: UNSUBSCRIBED\nREMOVED: REMOVED\nFAILED: FAILED', enum_type=Stage, max_length=16),
        ),
    ]
