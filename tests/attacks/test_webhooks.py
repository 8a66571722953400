"""Webhooks out: the addresses a webhook may not reach (SPEC R10.3, R15), every
form an address takes in a URL, refused at registration and again at send; and
sealed signing secrets moved between rows of the database."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from app import presets
from app.accounts.models import Role
from app.clock import FrozenClock
from app.config import Settings
from app.events import log, relay
from app.prospects import service as prospects
from app.webhooks import sealing, service
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from app.webhooks.sender import Sender
from tests.conftest import GraphQL, Org, mutate

REFUSED, ALLOWED = "refused", "allowed"

ADDRESSES = [
    pytest.param("http://127.0.0.1/hook", REFUSED, id="ipv4-loopback"),
    pytest.param("http://2130706433/hook", REFUSED, id="ipv4-loopback-as-one-number"),
    pytest.param("http://0x7f.1/hook", REFUSED, id="ipv4-loopback-hex-short"),
    pytest.param("http://0177.0.0.1/hook", REFUSED, id="ipv4-loopback-octal"),
    pytest.param("http://localhost/hook", REFUSED, id="localhost"),
    pytest.param("http://169.254.169.254/latest/meta-data", REFUSED, id="ipv4-link-local-metadata"),
    pytest.param("http://100.64.0.1/hook", REFUSED, id="ipv4-shared-cgnat"),
    pytest.param("http://192.0.0.8/hook", REFUSED, id="ipv4-ietf-protocol-assignments"),
    pytest.param("http://192.88.99.1/hook", REFUSED, id="ipv4-6to4-relay-anycast"),
    pytest.param("http://224.0.0.1/hook", REFUSED, id="ipv4-multicast"),
    pytest.param("http://240.0.0.1/hook", REFUSED, id="ipv4-reserved"),
    pytest.param("http://0.0.0.0/hook", REFUSED, id="ipv4-this-host"),
    pytest.param("http://[::1]/hook", REFUSED, id="ipv6-loopback"),
    pytest.param("http://[::]/hook", REFUSED, id="ipv6-unspecified"),
    pytest.param("http://[::ffff:127.0.0.1]/hook", REFUSED, id="ipv4-mapped-loopback"),
    pytest.param("http://[::ffff:7f00:1]/hook", REFUSED, id="ipv4-mapped-loopback-hex"),
    pytest.param("http://[::ffff:169.254.169.254]/hook", REFUSED, id="ipv4-mapped-metadata"),
    pytest.param("http://[::ffff:0:7f00:1]/hook", REFUSED, id="ipv4-translated-loopback"),
    pytest.param("http://[::127.0.0.1]/hook", REFUSED, id="ipv4-compatible-loopback"),
    pytest.param("http://[::10.0.0.1]/hook", REFUSED, id="ipv4-compatible-private"),
    pytest.param("http://[64:ff9b::7f00:1]/hook", REFUSED, id="nat64-loopback"),
    pytest.param("http://[64:ff9b::a9fe:a9fe]/hook", REFUSED, id="nat64-metadata"),
    pytest.param("http://[64:ff9b::c0a8:101]/hook", REFUSED, id="nat64-private"),
    pytest.param("http://[64:ff9b:1::808:808]/hook", REFUSED, id="nat64-local-use-prefix"),
    pytest.param("http://[2002:7f00:1::]/hook", REFUSED, id="6to4-loopback"),
    pytest.param("http://[2002:c0a8:101::1]/hook", REFUSED, id="6to4-private"),
    pytest.param("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook", REFUSED, id="teredo-loopback-client"),
    pytest.param("http://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/hook", REFUSED, id="teredo-any"),
    pytest.param("http://[fe80::1%25eth0]/hook", REFUSED, id="ipv6-link-local-zone"),
    pytest.param("http://[fec0::1]/hook", REFUSED, id="ipv6-site-local"),
    pytest.param("http://[fd12:3456::1]/hook", REFUSED, id="ipv6-unique-local"),
    pytest.param("http://[ff02::1]/hook", REFUSED, id="ipv6-multicast"),
    pytest.param("http://[100::1]/hook", REFUSED, id="ipv6-discard"),
    pytest.param("http://[2001:db8::1]/hook", REFUSED, id="ipv6-documentation"),
    pytest.param("http://[3fff::1]/hook", REFUSED, id="ipv6-documentation-2024"),
    pytest.param("http://[5f00::1]/hook", REFUSED, id="ipv6-outside-global-unicast"),
    pytest.param("http://8.8.8.8/hook", ALLOWED, id="ipv4-public"),
    pytest.param("http://[2606:4700:4700::1111]/hook", ALLOWED, id="ipv6-public"),
    pytest.param("http://[::ffff:8.8.8.8]/hook", ALLOWED, id="ipv4-mapped-public"),
    pytest.param("http://[64:ff9b::808:808]/hook", ALLOWED, id="nat64-public"),
    pytest.param("http://[2002:808:808::1]/hook", ALLOWED, id="6to4-public"),
]
"""Each URL, and whether createWebhookEndpoint takes it (WEBHOOK_ALLOW_PRIVATE unset)."""

OTHER, OWN = "another organization's endpoint", "the same endpoint"
NOTHING, ITS_CURRENT = "nothing signs", "only its own current secret signs"

MOVED_SECRETS = [
    pytest.param(OTHER, "secret", "secret", NOTHING, id="another-endpoints-secret-as-current"),
    pytest.param(OTHER, "previous_secret", "secret", NOTHING, id="another-endpoints-previous-as-current"),
    pytest.param(OTHER, "secret", "previous_secret", ITS_CURRENT, id="another-endpoints-secret-as-previous"),
    pytest.param(OTHER, "previous_secret", "previous_secret", ITS_CURRENT, id="another-endpoints-previous-as-previous"),
    pytest.param(OWN, "previous_secret", "secret", NOTHING, id="own-previous-secret-as-current"),
]
"""A sealed secret copied into an endpoint's row by someone who can write the
database but has no SECRET_KEY (whose row, from which column, into which), and
what then signs that endpoint's deliveries: a sealed value opens only in the
row and column it was sealed for."""

ENDPOINT = "webhookEndpoint { url }"


@pytest.mark.parametrize(("url", "verdict"), ADDRESSES)
async def test_webhook_addresses(gql: GraphQL, org: Org, url: str, verdict: str) -> None:
    payload = await mutate(gql, org.tokens[Role.ADMIN], "createWebhookEndpoint", ENDPOINT, url=url)
    if verdict == REFUSED:
        assert payload["webhookEndpoint"] is None, payload
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [("INVALID_INPUT", ["input", "url"])]
    else:
        assert payload["errors"] == [] and payload["webhookEndpoint"] == {"url": url}


@pytest.mark.parametrize(("source", "from_column", "to_column", "signs"), MOVED_SECRETS)
async def test_sealed_secrets_moved_between_rows(
    org: Org,
    other_org: Org,
    settings: Settings,
    clock: FrozenClock,
    source: str,
    from_column: str,
    to_column: str,
    signs: str,
) -> None:
    current = {}
    for owner in (org, other_org):
        admin = owner.actor(Role.ADMIN, clock)
        made = await service.create_endpoint(
            actor=admin, settings=settings, url="https://8.8.8.8/hook", event_types=None
        )
        rotated = await service.rotate_secret(actor=admin, settings=settings, endpoint_id=made.endpoint.id)
        current[owner.id] = rotated.secret
    target = await WebhookEndpoint.get(organization_id=org.id)
    origin = target if source == OWN else await WebhookEndpoint.get(organization_id=other_org.id)
    await WebhookEndpoint.filter(id=target.id).update(**{to_column: getattr(origin, from_column)})

    moved = await WebhookEndpoint.get(id=target.id)
    try:
        signing = sealing.signing_secrets(moved, clock.now(), secret_key=settings.secret_key)
    except sealing.UnreadableSecret:  # the delivery fails, saying so
        signing = []
    assert signing == {NOTHING: [], ITS_CURRENT: [current[org.id]]}[signs]


REGISTERED_WHILE_ALLOWED = [
    "http://[64:ff9b::7f00:1]:9/hook",
    "http://[2002:7f00:1::]:9/hook",
    "http://[::127.0.0.1]:9/hook",
    "http://[::ffff:0:7f00:1]:9/hook",
    "http://[fec0::1]:9/hook",
]


async def test_embedded_loopback_endpoints_registered_while_allowed_are_refused_at_send(
    org: Org, redis: Redis, clock: FrozenClock, tmp_path: Path
) -> None:
    allowed = Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "data"), "WEBHOOK_ALLOW_PRIVATE": "1"})
    for url in REGISTERED_WHILE_ALLOWED:
        await service.create_endpoint(actor=org.actor(Role.ADMIN, clock), settings=allowed, url=url, event_types=None)
    await presets.apply(actor=org.actor(Role.ADMIN, clock), name="lead-workflow")
    _, errors = await prospects.create_prospects(actor=org.actor(Role.ADMIN, clock), inputs=[{"first_name": "Ada"}])
    assert not errors
    await log.sequence()
    await relay.publish(redis, clock)
    sender = Sender(Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "data")}))
    assert await sender.start_due(clock) == len(REGISTERED_WHILE_ALLOWED)
    await sender.close()  # waits for the attempts to end
    deliveries = await WebhookDelivery.all().select_related("endpoint")
    assert {(d.endpoint.url, d.attempts, d.last_error) for d in deliveries} == {
        (url, 1, "The URL resolves to a private or loopback address; webhooks go to public ones.")
        for url in REGISTERED_WHILE_ALLOWED
    }
