from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    """Threads (contract part 60): a step may go out as a reply to the enrollment's
    previous email; a message names the one it answers and carries its References.
    The step's flag has a database default, so existing steps get false."""

    dependencies = [('models', '0025_mailbox_limits')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Message',
            name='in_reply_to',
            field=fields.ForeignKeyField('models.Message', source_field='in_reply_to_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL),
        ),
        ops.AddField(
            model_name='Message',
            name='references_header',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddField(
            model_name='SequenceStep',
            name='thread_with_previous',
            field=fields.BooleanField(default=False, db_default=False),
        ),
    ]
