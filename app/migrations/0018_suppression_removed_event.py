from tortoise import migrations
from tortoise.migrations import operations as ops
from app.events.models import EventType
from tortoise import fields

class Migration(migrations.Migration):
    """The event an ADMIN's removal of a suppression-list entry appends (R12.1): the
    column is unchanged, only the enum's description lists the new type."""

    dependencies = [('models', '0017_suppressions')]

    initial = False

    operations = [
        ops.AlterField(
            model_name='Event',
            name='type',
            field=fields.CharEnumField(description='PROSPECT_CREATED: PROSPECT_CREATED\nPROSPECT_UPDATED: PROSPECT_UPDATED\nPROSPECT_DELETED: PROSPECT_DELETED\nSTATUS_CHANGED: STATUS_CHANGED\nSTAGE_CHANGED: STAGE_CHANGED\nMESSAGE_SENT: MESSAGE_SENT\nMESSAGE_RECEIVED: MESSAGE_RECEIVED\nMESSAGE_BOUNCED: MESSAGE_BOUNCED\nTASK_CREATED: TASK_CREATED\nTASK_DUE: TASK_DUE\nTASK_COMPLETED: TASK_COMPLETED\nASSIGNMENT_CHANGED: ASSIGNMENT_CHANGED\nSUPPRESSION_REMOVED: SUPPRESSION_REMOVED', enum_type=EventType, max_length=24),
        ),
    ]
