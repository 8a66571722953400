from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    """Mailbox sending limits: the counters they are enforced with, a mailbox's first sending day, a message's deferral and slot."""

    dependencies = [('models', '0024_mailboxes')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Mailbox',
            name='first_sending_day',
            field=fields.DateField(null=True),
        ),
        ops.AddField(
            model_name='Message',
            name='deferred_until',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Message',
            name='slot_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.CreateModel(
            name='SendCount',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('mailbox', fields.ForeignKeyField('models.Mailbox', source_field='mailbox_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('domain', fields.CharField(max_length=255)),
                ('starts_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('cap', fields.IntField()),
                ('sent', fields.IntField()),
                ('taken', fields.IntField()),
            ],
            options={'table': 'send_count', 'app': 'models', 'unique_together': (('mailbox', 'domain', 'starts_at'),), 'pk_attr': 'id', 'table_description': 'What a mailbox sent in one period, the counter its limits are enforced with'},
            bases=['Model'],
        ),
    ]
