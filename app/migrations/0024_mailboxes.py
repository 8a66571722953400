from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    """Mailboxes (contract part 60): sender identities with limits; a message names the one it goes out from."""

    dependencies = [('models', '0023_sequence_inactive')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Mailbox',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('models.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('address', fields.CharField(unique=True, max_length=320)),
                ('display_name', fields.CharField(null=True, max_length=200)),
                ('daily_limit', fields.IntField(default=200)),
                ('ramp_up_start', fields.IntField(null=True)),
                ('ramp_up_per_day', fields.IntField(null=True)),
                ('per_domain_hourly_limit', fields.IntField(null=True)),
                ('time_zone', fields.CharField(null=True, max_length=64)),
                ('smtp_url_sealed', fields.TextField(null=True, unique=False)),
                ('active', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'mailbox', 'app': 'models', 'indexes': [Index(fields=['organization_id', 'user_id'])], 'pk_attr': 'id', 'table_description': 'A sender identity with its sending limits (contract part 60): the address the'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Message',
            name='mailbox',
            field=fields.ForeignKeyField('models.Mailbox', source_field='mailbox_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL),
        ),
    ]
