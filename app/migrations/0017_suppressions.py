import json
from typing import Any

from tortoise import migrations
from tortoise.migrations import operations as ops
from app.prospects.models import Channel, SuppressionReason
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index


# Consent recorded on prospect rows before the suppression list: each blocked
# channel of a prospect with an address for it becomes an entry. Why a channel
# was blocked was not kept, so an opt-out is OPTED_OUT whatever its cause.
async def suppress_existing(apps: Any, schema_editor: Any) -> None:
    client = schema_editor.client
    postgres = client.capabilities.dialect == "postgres"
    marks = ", ".join(f"${n}" if postgres else "?" for n in range(1, 7))
    rows = await client.execute_query_dict(
        'SELECT "id", "organization_id", "email", "phone", "do_not_contact", "opted_out_channels", "updated_at" '
        'FROM "prospect" WHERE "do_not_contact" OR "opted_out_channels" NOT IN (\'[]\', \'""\')'
    )
    held: set[tuple[int, str, str, str]] = set()
    for row in rows:
        channels = row["opted_out_channels"]
        if isinstance(channels, str):
            channels = json.loads(channels)
        entries = [] if not row["do_not_contact"] else [
            (channel, "DO_NOT_CONTACT") for channel in ("EMAIL", "SMS", "PHONE")
        ]
        entries += [(channel, "OPTED_OUT") for channel in channels]
        for channel, reason in entries:
            address = row["email"].lower() if channel == "EMAIL" and row["email"] else row["phone"] if channel != "EMAIL" else None
            if not address:
                continue
            key = (row["organization_id"], channel, address, reason)
            if key in held:
                continue
            held.add(key)
            await client.execute_insert(
                f'INSERT INTO "suppression" ("organization_id", "channel", "address", "reason", "prospect_id", "created_at") '
                f"VALUES ({marks})",
                [row["organization_id"], channel, address, reason, row["id"], row["updated_at"]],
            )


class Migration(migrations.Migration):
    """The suppression list (R12.1): addresses an organization must never contact on
    a channel, whichever prospect carries them, one row per cause. Prospects'
    existing do-not-contact flags and opted-out channels are copied into it."""

    dependencies = [('models', '0016_claim_token')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Suppression',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('models.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('channel', fields.CharEnumField(description='EMAIL: EMAIL\nSMS: SMS\nPHONE: PHONE', enum_type=Channel, max_length=8)),
                ('address', fields.CharField(max_length=320)),
                ('reason', fields.CharEnumField(description='UNSUBSCRIBED: UNSUBSCRIBED\nOPTED_OUT: OPTED_OUT\nHARD_BOUNCE: HARD_BOUNCE\nDO_NOT_CONTACT: DO_NOT_CONTACT\nCOMPLAINT: COMPLAINT\nMANUAL: MANUAL', enum_type=SuppressionReason, max_length=16)),
                ('prospect', fields.ForeignKeyField('models.Prospect', source_field='prospect_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('created_by', fields.ForeignKeyField('models.User', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'suppression', 'app': 'models', 'unique_together': (('organization_id', 'channel', 'address', 'reason'),), 'indexes': [Index(fields=['organization_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'An address the organization must never contact on a channel (R12.1),'},
            bases=['Model'],
        ),
        ops.RunPython(suppress_existing, ops.RunPython.noop),
    ]
