from tortoise import migrations
from tortoise.migrations import operations as ops
from app.prospects.models import ConversationState
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0004_messages')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Prospect',
            name='conversation_state',
            field=fields.CharEnumField(default=ConversationState.NEW, description='NEW: NEW\nAWAITING_REPLY: AWAITING_REPLY\nREPLY_NEEDED: REPLY_NEEDED', enum_type=ConversationState, max_length=16),
        ),
        ops.AddField(
            model_name='Prospect',
            name='last_message_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
