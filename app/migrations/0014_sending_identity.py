from email.utils import parseaddr
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops

from app.accounts.models import IdentityKind


# The normalized forms app.accounts.identities compared when this migration was
# written, copied so that it keeps making the same rows whatever validation becomes.
def email_key(address: str) -> str | None:
    """The bare address, normalized by email_validator, lower-cased."""
    try:
        return validate_email(parseaddr(address)[1].strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def phone_key(number: str) -> str | None:
    """E.164, of a number given in international form."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


async def claim_existing(apps: Any, schema_editor: Any) -> None:
    client = schema_editor.client
    postgres = client.capabilities.dialect == "postgres"
    one, two, three = ("$1", "$2", "$3") if postgres else ("?", "?", "?")
    held: set[str] = set()
    rows = await client.execute_query_dict('SELECT "id", "email_from", "sms_from" FROM "organization" ORDER BY "id"')
    for row in rows:
        for column, kind, key_of in (
            ("email_from", "EMAIL_FROM", email_key),
            ("sms_from", "SMS_FROM", phone_key),
        ):
            if not row[column]:
                continue
            key = key_of(row[column])
            if key is not None and key not in held:
                held.add(key)
                await client.execute_insert(
                    f'INSERT INTO "sending_identity" ("organization_id", "kind", "address") VALUES ({one}, {two}, {three})',
                    [row["id"], kind, key],
                )
            else:
                await client.execute_query(f'UPDATE "organization" SET "{column}" = NULL WHERE "id" = {one}', [row["id"]])


class Migration(migrations.Migration):
    """Sending identities: each organization's emailFrom and smsFrom become rows of
    sending_identity, unique by normalized address (the bare email address
    lower-cased, E.164), so no two organizations can hold one.

    Existing organizations may already share one. The organization created first
    keeps it (inbound mail and SMS to it went there already); a later one's
    emailFrom or smsFrom that repeats it, or that is no valid address, is cleared,
    and it sends from the default address until an ADMIN sets one of its own."""

    dependencies = [('models', '0013_worker_indexes')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SendingIdentity',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('models.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='EMAIL_FROM: EMAIL_FROM\nSMS_FROM: SMS_FROM', enum_type=IdentityKind, max_length=16)),
                ('address', fields.CharField(unique=True, max_length=320)),
            ],
            options={'table': 'sending_identity', 'app': 'models', 'pk_attr': 'id', 'table_description': 'An address an organization sends from, held by that organization alone:'},
            bases=['Model'],
        ),
        ops.RunPython(claim_existing, ops.RunPython.noop),
    ]
