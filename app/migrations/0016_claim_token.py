from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """Each send claim stamps its messages with a random token, so a claim whose
    reply was lost when PostgreSQL went away can find its messages once it is back
    and return them to QUEUED (nothing was sent for them). A nullable column
    without a default: PostgreSQL adds it without rewriting the table."""

    dependencies = [('models', '0015_webhook_secrets')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Message',
            name='claim_token',
            field=fields.BigIntField(null=True),
        ),
    ]
