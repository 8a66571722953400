from tortoise import fields, migrations
from tortoise.migrations import operations as ops

from app.accounts.models import IdentityKind


class Migration(migrations.Migration):
    """Mailbox addresses are sending identities (kind MAILBOX), unique across
    organizations like emailFrom. Only a column's description: nothing is rewritten."""

    dependencies = [('models', '0027_resumes')]

    initial = False

    operations = [
        ops.AlterField(
            model_name='SendingIdentity',
            name='kind',
            field=fields.CharEnumField(description='EMAIL_FROM: EMAIL_FROM\nSMS_FROM: SMS_FROM\nMAILBOX: MAILBOX', enum_type=IdentityKind, max_length=16),
        ),
    ]
