"""Webhook signing secrets at rest: sealed with a key derived from
SECRET_KEY, shown once by the API, and sealed by migration 0015 where an older
install stored them plain."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis.asyncio import Redis
from tortoise import Tortoise, connections
from tortoise.migrations.api import migrate as run_migrations

from app import db, presets
from app.accounts.models import Role
from app.clock import FrozenClock
from app.config import Settings
from app.events import log, relay
from app.prospects import service as prospects
from app.webhooks import sealing, service, signing
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from app.webhooks.sender import Sender
from tests.conftest import GraphQL, Org, fresh_database, mutate
from tests.test_migrations import _insert

SECRET_COLUMNS = 'SELECT "secret", "previous_secret" FROM "webhook_endpoint" ORDER BY "id"'


def settings_with(tmp_path: Path, secret_key: str) -> Settings:
    return Settings.from_env(
        {"LEADLINE_DATA_DIR": str(tmp_path / "data"), "WEBHOOK_ALLOW_PRIVATE": "1", "SECRET_KEY": secret_key}
    )


async def test_secrets_are_stored_sealed_and_shown_once(
    gql: GraphQL, org: Org, settings: Settings, clock: FrozenClock
) -> None:
    admin = org.tokens[Role.ADMIN]
    created = await mutate(
        gql, admin, "createWebhookEndpoint", "secret webhookEndpoint { id }", url="https://8.8.8.8/hook"
    )
    rotated = await mutate(
        gql, admin, "rotateWebhookSecret", "secret webhookEndpoint { id }", id=created["webhookEndpoint"]["id"]
    )
    first, second = created["secret"], rotated["secret"]
    assert first.startswith("whsec_") and second.startswith("whsec_") and first != second

    [row] = await connections.get("default").execute_query_dict(SECRET_COLUMNS)
    for stored in row.values():  # both columns, neither in the clear
        assert stored.startswith("enc1:") and first not in stored and second not in stored
        assert len(stored) <= WebhookEndpoint._meta.fields_map["secret"].max_length
    endpoint = await WebhookEndpoint.get()
    assert sealing.signing_secrets(endpoint, clock.now(), secret_key=settings.secret_key) == [second, first]

    listed = await gql(admin, "{ webhookEndpoints { id url } }")  # no field shows a secret again
    assert listed["data"]["webhookEndpoints"] == [
        {"id": created["webhookEndpoint"]["id"], "url": "https://8.8.8.8/hook"}
    ]


async def test_without_its_secret_key_a_copy_of_the_database_signs_nothing(
    org: Org, redis: Redis, clock: FrozenClock, tmp_path: Path
) -> None:
    await presets.apply(actor=org.actor(Role.ADMIN, clock), name="lead-workflow")
    settings = settings_with(tmp_path, "the key that sealed it")
    await service.create_endpoint(
        actor=org.actor(Role.ADMIN, clock), settings=settings, url="http://127.0.0.1:9/hook", event_types=None
    )
    _, errors = await prospects.create_prospects(actor=org.actor(Role.ADMIN, clock), inputs=[{"first_name": "Ada"}])
    assert not errors
    await log.sequence()
    await relay.publish(redis, clock)

    sender = Sender(settings_with(tmp_path, "another key"))
    assert await sender.start_due(clock) == 1
    await sender.close()  # waits for the attempts to end
    delivery = await WebhookDelivery.get()
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        1,
        None,
        "The endpoint's secret does not open with this SECRET_KEY; rotate it.",
    )


async def test_two_rotations_at_once_keep_both_new_secrets(org: Org, clock: FrozenClock, tmp_path: Path) -> None:
    # Given an endpoint
    admin, settings = org.actor(Role.ADMIN, clock), settings_with(tmp_path, "k")
    created = await service.create_endpoint(
        actor=admin, settings=settings, url="https://8.8.8.8/hook", event_types=None
    )
    endpoint_id = created.endpoint.id
    # when two rotations run at once
    first, second = await asyncio.gather(
        *(service.rotate_secret(actor=admin, settings=settings, endpoint_id=endpoint_id) for _ in range(2))
    )
    # then the later one's secret is current and the earlier one's previous: neither is lost.
    row = await WebhookEndpoint.get(id=created.endpoint.id)
    current = sealing.unseal(row.secret, secret_key="k", endpoint_id=row.id, column="secret")
    assert row.previous_secret is not None
    previous = sealing.unseal(row.previous_secret, secret_key="k", endpoint_id=row.id, column="previous_secret")
    assert {current, previous} == {first.secret, second.secret}


async def test_migration_0015_seals_the_secrets_an_older_install_stored_plain(tmp_path: Path) -> None:
    plain, previous = signing.new_secret(), signing.new_secret()
    now = datetime.now(UTC)
    async with fresh_database(file=tmp_path / "old.sqlite3") as url:
        settings = Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path), "DATABASE_URL": url, "SECRET_KEY": "k1"})
        await run_migrations(config=db.tortoise_config(url), target="models.0014_sending_identity")
        await Tortoise.init(config=db.tortoise_config(url))
        try:  # as the code before sealing stored them
            # The organization's columns as they were then (the model has grown since).
            organization_id = await _insert(
                connections.get("default"),
                "organization",
                name="Acme",
                time_zone="UTC",
                phone_region="US",
                pull_from_other_agents=False,
                created_at=now,
            )
            for previous_secret in (None, previous):
                await WebhookEndpoint.create(
                    organization_id=organization_id,
                    url="https://8.8.8.8/hook",
                    secret=plain,
                    previous_secret=previous_secret,
                    previous_secret_expires_at=now + timedelta(hours=24) if previous_secret else None,
                    created_at=now,
                )
        finally:
            await Tortoise.close_connections()

        await db.migrate(settings)
        await db.migrate(settings)  # a second run has nothing to do

        await Tortoise.init(config=db.tortoise_config(url))
        try:
            rows = await connections.get("default").execute_query_dict(SECRET_COLUMNS)
            endpoints = await WebhookEndpoint.all().order_by("id")
        finally:
            await Tortoise.close_connections()
    assert [[stored is None or stored.startswith("enc1:") for stored in row.values()] for row in rows] == [
        [True, True],
        [True, True],
    ]
    assert [sealing.signing_secrets(endpoint, now, secret_key="k1") for endpoint in endpoints] == [
        [plain],
        [plain, previous],
    ]
