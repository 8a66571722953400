from tortoise import migrations
from tortoise.migrations import operations as ops

from app import db
from app.webhooks import sealing


async def _reseal(schema_editor, change) -> None:
    """Rewrites each endpoint's secrets through ``change(stored, endpoint id,
    column)`` (None stays None)."""
    if schema_editor.collect_sql:
        return  # `tortoise sqlmigrate` prints SQL; a data migration has none to print
    client = schema_editor.client
    marks = ("$1", "$2", "$3") if client.capabilities.dialect == "postgres" else ("?", "?", "?")
    rows = await client.execute_query_dict('SELECT "id", "secret", "previous_secret" FROM "webhook_endpoint"')
    for row in rows:
        secret = change(row["secret"], row["id"], "secret")
        previous = row["previous_secret"] and change(row["previous_secret"], row["id"], "previous_secret")
        if (secret, previous) != (row["secret"], row["previous_secret"]):
            await client.execute_query(
                f'UPDATE "webhook_endpoint" SET "secret" = {marks[0]}, "previous_secret" = {marks[1]} '
                f'WHERE "id" = {marks[2]}',
                [secret, previous, row["id"]],
            )


async def seal_plain_secrets(apps, schema_editor) -> None:
    key = db.migration_settings().secret_key

    def seal(stored, endpoint_id, column):
        if sealing.is_sealed(stored):
            return stored
        return sealing.seal(stored, secret_key=key, endpoint_id=endpoint_id, column=column)

    await _reseal(schema_editor, seal)


async def unseal_secrets(apps, schema_editor) -> None:
    key = db.migration_settings().secret_key

    def unseal(stored, endpoint_id, column):
        return sealing.unseal(stored, secret_key=key, endpoint_id=endpoint_id, column=column)

    await _reseal(schema_editor, unseal)


class Migration(migrations.Migration):
    """Webhook signing secrets stored sealed with a key derived from SECRET_KEY
    (app/webhooks/sealing.py), the current and the previous one, each bound to its
    endpoint and column; undone, they are stored plain again."""

    dependencies = [('models', '0014_sending_identity')]

    initial = False

    operations = [
        ops.RunPython(seal_plain_secrets, reverse_code=unseal_secrets),
    ]
