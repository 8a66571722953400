from tortoise import migrations
from tortoise.migrations import operations as ops
from app.sequences.state import Stage
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0002_sequences')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Status',
            name='enrollment_outcome',
            field=fields.CharEnumField(null=True, description='NOT_STARTED: NOT_STARTED\nSTARTED: STARTED\nAPPROACHING: APPROACHING\nPAUSED: PAUSED\nREPLIED: REPLIED\nSUCCESS: SUCCESS\nNOT_INTERESTED: NOT_INTERESTED\nUNRESPONSIVE: UNRESPONSIVE\nBOUNCED: BOUNCED\nOPTED_OUT: OPTED_OUT\nUNSUBSCRIBED: UNSUBSCRIBED\nREMOVED: REMOVED\nFAILED: FAILED', enum_type=Stage, max_length=16),
        ),
    ]
