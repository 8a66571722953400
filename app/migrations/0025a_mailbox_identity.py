from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops

from app.accounts.models import IdentityKind


class Migration(migrations.Migration):
    """Mailbox addresses are sending identities (kind MAILBOX), unique across
    organizations like emailFrom; a message names the message it answers. Only a
    column's description and a nullable column: nothing is rewritten."""

    dependencies = [('models', '0024_mailboxes')]

    initial = False

    operations = [
        ops.AlterField(
            model_name='SendingIdentity',
            name='kind',
            field=fields.CharEnumField(description='EMAIL_FROM: EMAIL_FROM\nSMS_FROM: SMS_FROM\nMAILBOX: MAILBOX', enum_type=IdentityKind, max_length=16),
        ),
        ops.AddField(
            model_name='Message',
            name='in_reply_to',
            field=fields.ForeignKeyField('models.Message', source_field='in_reply_to_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL),
        ),
    ]
