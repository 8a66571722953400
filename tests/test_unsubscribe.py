"""R6.3: the unsubscribe link of a real sent email, over real HTTP."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx

from app.accounts.models import Organization, Role
from app.clock import FrozenClock
from app.config import Settings
from app.messaging import sending
from app.messaging.models import Message
from app.prospects.merge import merge_prospects
from app.prospects.models import Prospect, Suppression
from app.prospects.service import create_prospect
from app.sequences import scheduler
from app.sequences.models import Enrollment, StageChange, StepType
from app.sequences.service import StepSpec
from tests.conftest import Org
from tests.smtp_sink import smtp_sink
from tests.test_scheduler import setup

STEPS = [
    StepSpec(StepType.EMAIL, 0, body="Hello", subject="Hi"),
    StepSpec(StepType.EMAIL, 60, body="Again", subject="Re"),
]


async def _link_of_a_sent_email(org: Org, clock: FrozenClock, tmp_path: Path, settings: Settings) -> str:
    await Organization.filter(id=org.id).update(email_from="sales@acme.example")
    await setup(org, clock, steps=STEPS)
    [message_id] = (await scheduler.run_pass(clock)).queued
    with smtp_sink() as (sink, url):
        smtp_settings = Settings.from_env(
            {"LEADLINE_DATA_DIR": str(settings.data_dir), "SMTP_URL": url, "SECRET_KEY": settings.secret_key}
        )
        transports = sending.transports_for(smtp_settings)
        try:
            await sending.send(message_id, transports=transports, settings=smtp_settings, clock=clock)
        finally:
            await transports.close()
    [email] = sink.received
    link: str = email["List-Unsubscribe"].strip("<>")
    assert link in email.get_payload(decode=True).decode()
    return urlsplit(link).path


async def test_the_link_of_a_sent_email_unsubscribes_by_one_click(
    org: Org, clock: FrozenClock, tmp_path: Path, settings: Settings, live_server: str
) -> None:
    path = await _link_of_a_sent_email(org, clock, tmp_path, settings)
    async with httpx.AsyncClient(base_url=live_server) as http:
        page = await http.get(path)
        prospect = await Prospect.get(email="ada@client.example")
        assert page.status_code == 200 and "Unsubscribe?" in page.text and 'method="post"' in page.text
        assert prospect.opted_out_channels == [] and "set-cookie" not in page.headers  # GET changed nothing

        done = await http.post(
            path, content=b"List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        again = await http.post(
            path, content=b"List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        revisit = await http.get(path)

        token = path.rsplit("/", 1)[1]
        forged = await http.post(path[: -len(token)] + token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
        unknown = await http.get("/no/such/page")
    assert (done.status_code, again.status_code) == (200, 200)
    assert "You are unsubscribed" in done.text and "You are unsubscribed" in revisit.text
    prospect = await Prospect.get(email="ada@client.example")
    enrollment = await Enrollment.get(prospect_id=prospect.id)
    assert prospect.opted_out_channels == ["EMAIL"] and enrollment.stage == "UNSUBSCRIBED"
    changes = await StageChange.filter(enrollment_id=enrollment.id, to_stage="UNSUBSCRIBED").count()
    assert changes == 1  # the repeat was harmless
    clock.advance(60)
    assert (await scheduler.run_pass(clock)).queued == []
    assert await Message.filter(prospect_id=prospect.id).count() == 1
    assert (forged.status_code, forged.text) == (unknown.status_code, unknown.text) == (404, "Not Found")


async def test_the_link_still_unsubscribes_once_its_prospect_is_merged_into_another(
    org: Org, clock: FrozenClock, tmp_path: Path, settings: Settings, live_server: str
) -> None:
    """The link speaks for its message's prospect now: the record it was sent to is
    gone into the kept one, and the address it went to is suppressed as well as the
    kept record's own."""
    path = await _link_of_a_sent_email(org, clock, tmp_path, settings)
    admin = org.actor(Role.ADMIN, clock)
    sent_to = await Prospect.get(email="ada@client.example")
    kept = await create_prospect(actor=admin, values={"first_name": "Ada", "email": "ada@home.example"})
    await merge_prospects(actor=admin, keep_id=kept.id, merge_ids=[sent_to.id])

    async with httpx.AsyncClient(base_url=live_server) as http:
        page = await http.get(path)
        done = await http.post(
            path, content=b"List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
    assert (page.status_code, done.status_code) == (200, 200) and "You are unsubscribed" in done.text
    await kept.refresh_from_db()
    assert kept.opted_out_channels == ["EMAIL"] and kept.unsubscribed_at is not None
    entries = await Suppression.filter(organization_id=org.id).values_list("channel", "address", "reason")
    assert set(entries) == {
        ("EMAIL", "ada@client.example", "UNSUBSCRIBED"),
        ("EMAIL", "ada@home.example", "UNSUBSCRIBED"),
    }
