"""Issue 21, item 2: one inbound classifier. A corpus of replies written for these
tests (positives in English, German, French and Spanish, near misses, quoted
originals, HTML bodies, SMS keyword variants), then each inbound path end to
end: the Twilio webhook, the email webhook (raw MIME), recordInboundMessage."""

from __future__ import annotations

import time
from pathlib import Path
from textwrap import dedent

import httpx
import pytest

from app.accounts import service as accounts
from app.accounts.models import Role
from app.clock import FrozenClock
from app.config import INBOUND_EMAIL_READ_SECONDS, Settings
from app.messaging import classify, inbound_email
from app.messaging.classify import Kind
from app.messaging.inbound_email import EmailKind
from app.messaging.models import Message
from app.prospects.models import Channel, Prospect
from app.sequences.models import Enrollment, StageChange, StepType
from app.sequences.service import StepSpec
from tests import test_email_webhook as email_webhook
from tests import test_twilio_webhooks as twilio_webhook
from tests.conftest import GraphQL, Org, mutate
from tests.test_scheduler import setup

REPLIES = Path(__file__).parent / "fixtures" / "replies"
UNSUBSCRIBE = Kind.UNSUBSCRIBE_REQUEST
REPLY = Kind.REPLY
QUOTED_FOOTER = """
> Hi Ada,
>
> Would you be open to a 15-minute call next week?
>
> To unsubscribe click here: https://leads.example/u/abc
> Unsubscribe
"""


def _text(text: str) -> str:
    return dedent(text).strip("\n")


EMAILS = [
    # Positives, English
    ("Unsubscribe", UNSUBSCRIBE),
    ("unsubscribe me please", UNSUBSCRIBE),
    ("Hi Sam,\n\nPlease remove me from your mailing list.\n\nThanks,\nJoe", UNSUBSCRIBE),
    ("Stop emailing me.", UNSUBSCRIBE),
    ("Take me off your list!!", UNSUBSCRIBE),
    ("Please stop contacting me. We are not interested.", UNSUBSCRIBE),
    ("Not interested, please remove me.", UNSUBSCRIBE),
    ("Could you please unsubscribe me from these emails?", UNSUBSCRIBE),
    ("STOP\n\nSent from my iPhone", UNSUBSCRIBE),
    ("I'd like to be removed from your list. Thank you.", UNSUBSCRIBE),
    ("Do not email me again.", UNSUBSCRIBE),
    ("No more emails please!", UNSUBSCRIBE),
    ("Please opt me out.", UNSUBSCRIBE),
    ("Opt-out", UNSUBSCRIBE),
    ("Thanks but no thanks. Please take me off your list.", UNSUBSCRIBE),
    ("Hello Sam,\nI\u2019m not interested, stop sending me these emails.\nRegards", UNSUBSCRIBE),
    ("Please remove me from your distribution list.\n" + QUOTED_FOOTER, UNSUBSCRIBE),
    # German
    ("Abmelden", UNSUBSCRIBE),
    ("Hallo,\n\nbitte keine E-Mails mehr.\n\nGruß\nAnna", UNSUBSCRIBE),
    ("Bitte entfernen Sie mich aus Ihrer Liste.", UNSUBSCRIBE),
    ("Ich möchte mich abmelden.", UNSUBSCRIBE),
    ("Bitte nehmen Sie mich aus Ihrem Verteiler.", UNSUBSCRIBE),
    ("Schicken Sie mir bitte keine E-Mails mehr!", UNSUBSCRIBE),
    # French
    ("Bonjour,\n\nMerci de me désinscrire.\n\nCordialement,\nClaire", UNSUBSCRIBE),
    ("Je souhaite me désabonner.", UNSUBSCRIBE),
    ("Retirez-moi de votre liste s'il vous plaît.", UNSUBSCRIBE),
    ("Arrêtez de m\u2019envoyer des e-mails.", UNSUBSCRIBE),
    ("DÉSINSCRIPTION", UNSUBSCRIBE),
    # Spanish
    ("Quiero darme de baja.", UNSUBSCRIBE),
    ("Por favor, elimínenme de su lista.", UNSUBSCRIBE),
    ("Dejen de enviarme correos, gracias.", UNSUBSCRIBE),
    ("BAJA", UNSUBSCRIBE),
    ("Hola,\n\nno me envíen más correos.\n\nSaludos", UNSUBSCRIBE),
    # Near misses: replies
    ("Please don't stop, this is exactly what we need.", REPLY),
    ("don't stop", REPLY),
    ("Can you remove the attachment? It's too big for our filter.", REPLY),
    ("Please don't unsubscribe me, I like these updates.", REPLY),
    ("Stop by our booth at SaaStr next week!", REPLY),
    ("I can't unsubscribe from your competitor's newsletter, any tips?", REPLY),
    ("Please remove John from the thread, he left the company.", REPLY),
    ("Don't email me, call me at 555-0100.", REPLY),
    ("Can you take me off the CC and loop in Maria instead?", REPLY),
    ("Stop sending the invoices to my old address, use billing@client.example.", REPLY),
    ("If this isn't relevant for us, I'll unsubscribe later.", REPLY),
    ("If you can't help, remove me from your list.", REPLY),
    ("Cancel\n\nI can't make Thursday, sorry.", REPLY),  # CANCEL is an SMS keyword only
    ("End of quarter is busy, ping me in January.", REPLY),
    ("Yes", REPLY),  # opting back in is SMS only
    ("Bitte nicht abmelden, wir sind interessiert.", REPLY),
    ("Wie kann ich mich von Ihrem Newsletter abmelden?", REPLY),
    ("Ne me désabonnez pas, merci.", REPLY),
    ("No quiero darme de baja, solo cambiar mi correo.", REPLY),
    ("Tell me more about pricing.", REPLY),
    # Quoted text below the reply does not count
    (
        "Thanks, sounds good!\n\nOn Mon, Nov 23, 2026 at 10:00 AM Sam <sales@acme.example> wrote:\n" + QUOTED_FOOTER,
        REPLY,
    ),
    (
        _text(
            """
            Great, Tuesday works.

            On Mon, Nov 23, 2026 at 10:00 AM Acme Sales <
            sales@acme.example> wrote:
            Unsubscribe
            """
        ),
        REPLY,
    ),
    (
        _text(
            """
            Let's meet Tuesday.

            ________________________________
            From: Acme Sales <sales@acme.example>
            Sent: Monday, November 23, 2026 10:00 AM
            To: Ada King <ada@client.example>
            Subject: Hi Ada

            Please remove me from your list? Reply STOP.
            Unsubscribe
            """
        ),
        REPLY,
    ),
    (
        _text(
            """
            Passt, danke!

            Am 23.11.2026 um 11:00 schrieb Acme Sales <sales@acme.example>:
            Abmelden: https://leads.example/u/abc
            """
        ),
        REPLY,
    ),
    ("Ça me va.\n\nLe lun. 23 nov. 2026 à 10:00, Acme <sales@acme.example> a écrit :\nSe désinscrire", REPLY),
    ("De acuerdo.\n\nEl lun, 23 nov 2026 a las 10:00, Acme (<sales@acme.example>) escribió:\nDarme de baja", REPLY),
    ("Sounds great.\n-- \nJoe Bloggs\nUnsubscribe", REPLY),
    ("Sure.\n\n-----Original Message-----\nFrom: Acme Sales\nUnsubscribe", REPLY),
    ("> Unsubscribe\nThanks, I'll read it tonight.", REPLY),
    # Only the first lines count (classify.REPLY_LINES)
    ("Hi Sam,\nThanks for the note.\nWe use another tool.\nMaybe next year.\nAll the best,\nJoe\nUnsubscribe", REPLY),
    ("Hi Sam,\nThanks for the note.\nWe use another tool.\nMaybe next year.\nUnsubscribe", UNSUBSCRIBE),
]


@pytest.mark.parametrize(("text", "kind"), EMAILS, ids=[f"{i:02d}" for i in range(len(EMAILS))])
def test_email_replies(text: str, kind: Kind) -> None:
    assert classify.email_reply(text) is kind


def test_the_corpus_is_large_and_balanced() -> None:
    positives = [t for t, k in EMAILS if k is UNSUBSCRIBE]
    assert len(EMAILS) >= 40 and len(positives) >= 20 and len(EMAILS) - len(positives) >= 20


@pytest.mark.parametrize(
    ("subject", "body", "kind"),
    [
        ("Unsubscribe", "", UNSUBSCRIBE),
        ("Remove me", "Sent from my phone", UNSUBSCRIBE),
        ("STOP", "", UNSUBSCRIBE),
        ("Re: Unsubscribe options", "Thanks for the overview.", REPLY),  # a reply quotes our subject
        ("AW: Abmelden", "Danke, bis Dienstag.", REPLY),
        ("Pricing question", "How much for 10 seats?", REPLY),
    ],
)
def test_a_subject_of_its_own_counts(subject: str, body: str, kind: Kind) -> None:
    assert classify.email_reply(body, subject=subject) is kind


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("stop", Kind.OPT_OUT),
        (" Stop.", Kind.OPT_OUT),
        ("STOPALL", Kind.OPT_OUT),
        ("OPT OUT", Kind.OPT_OUT),
        ("OPT-OUT", Kind.OPT_OUT),
        ("optout", Kind.OPT_OUT),
        ("unsubscribe", Kind.OPT_OUT),
        ("REVOKE", Kind.OPT_OUT),
        ("Cancel!", Kind.OPT_OUT),
        ("end", Kind.OPT_OUT),
        ("Quit", Kind.OPT_OUT),
        ("\uff33\uff34\uff2f\uff30", Kind.OPT_OUT),  # full-width STOP
        ("\u00a0STOP\u3002", Kind.OPT_OUT),  # no-break space, ideographic full stop
        ("START", Kind.OPT_IN),
        ("unstop", Kind.OPT_IN),
        ("Yes!", Kind.OPT_IN),
        ("please stop", Kind.REPLY),
        ("stop it", Kind.REPLY),
        ("Don't stop", Kind.REPLY),
        ("remove me from your list", Kind.REPLY),  # an SMS opts out by keyword only (R6.2)
        ("", Kind.REPLY),
    ],
)
def test_sms_keywords(body: str, kind: Kind) -> None:
    assert classify.inbound(Channel.SMS, body) is kind


def test_an_auto_reply_is_only_that_and_keywords_to_opt_in_are_sms_only() -> None:
    assert classify.inbound(Channel.EMAIL, "Unsubscribe", auto_reply=True) is Kind.AUTO_REPLY
    assert classify.inbound(Channel.SMS, "STOP", auto_reply=True) is Kind.AUTO_REPLY
    assert classify.inbound(Channel.EMAIL, "START") is Kind.REPLY
    assert classify.inbound(Channel.EMAIL, "Stop.") is Kind.UNSUBSCRIBE_REQUEST


GMAIL_HTML = (
    '<div dir="ltr">{reply}</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">'
    "On Mon, Nov 23, 2026 at 10:00 AM Acme &lt;sales@acme.example&gt; wrote:<br></div>"
    '<blockquote class="gmail_quote">Hi Ada,<br>Unsubscribe<br>To unsubscribe click here</blockquote></div>'
)


@pytest.mark.parametrize(
    ("html", "kind"),
    [
        (GMAIL_HTML.format(reply="Please unsubscribe me."), UNSUBSCRIBE),
        (GMAIL_HTML.format(reply="Thanks, interested! Call me Tuesday."), REPLY),
        (
            "<html><head><style>p{margin:0}</style></head><body><p>Hi Sam,</p><p>Unsubscribe</p></body></html>",
            UNSUBSCRIBE,
        ),
        ("<p>Arr&ecirc;tez de m&#39;envoyer des e-mails.</p>", UNSUBSCRIBE),
        ("<p>Klingt gut.</p><hr><p><b>Von:</b> Acme</p><p>Abmelden</p>", REPLY),  # Outlook's original below <hr>
        ("<div>Sure!</div><blockquote type='cite'><div>Unsubscribe</div></blockquote>", REPLY),  # Apple Mail
        ("<p>Happy to talk.</p><script>document.write('Unsubscribe')</script>", REPLY),
    ],
)
def test_html_replies_are_read_line_by_line_up_to_their_quote(html: str, kind: Kind) -> None:
    assert classify.email_reply(classify.html_reply(html)) is kind


def test_hostile_texts_are_read_in_linear_time() -> None:
    start = time.process_time()
    assert classify.email_reply("hello " * 200_000) is REPLY
    assert classify.email_reply("hi dear " * 20 + "please " * 20 + "x") is REPLY
    assert classify.email_reply(classify.html_reply("<style>" * 20_000 + "<p>Unsubscribe</p>")) is REPLY
    assert classify.email_reply("On " + "x " * 5_000 + "\nUnsubscribe") is UNSUBSCRIBE  # not an attribution
    assert time.process_time() - start < 2


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("outlook_html_de_unsubscribe.eml", EmailKind.UNSUBSCRIBE_REQUEST),
        ("apple_plain_fr_unsubscribe.eml", EmailKind.UNSUBSCRIBE_REQUEST),
        ("gmail_html_quoted_footer.eml", EmailKind.REPLY),
    ],
)
def test_raw_replies(name: str, kind: EmailKind) -> None:
    found = inbound_email.classify((REPLIES / name).read_bytes(), cpu_seconds=INBOUND_EMAIL_READ_SECONDS)
    assert found.kind is kind


# End to end


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Both webhooks' secrets, as their own tests give them."""
    return Settings.from_env(
        {
            "LEADLINE_DATA_DIR": str(tmp_path / "data"),
            "PUBLIC_URL": "https://leads.example",
            "TWILIO_AUTH_TOKEN": twilio_webhook.AUTH_TOKEN,
            "INBOUND_EMAIL_TOKEN": email_webhook.TOKEN,
        }
    )


async def _stage_and_reason(enrollment: Enrollment) -> tuple[str, str | None]:
    await enrollment.refresh_from_db()
    last = await StageChange.filter(enrollment_id=enrollment.id).order_by("-id").first()
    return enrollment.stage, last.reason if last else None


async def test_twilio_stop_opts_out_of_sms(org: Org, clock: FrozenClock, settings: Settings, live_server: str) -> None:
    enrollment, queued = await twilio_webhook._first_sms_sent(org, clock, settings)
    async with httpx.AsyncClient(base_url=live_server) as http:
        answer = await twilio_webhook.Twilio(http, settings).sms("SM-optout", "OPT-OUT")
    assert answer.status_code == 200
    assert await _stage_and_reason(enrollment) == ("OPTED_OUT", "opted_out")
    prospect = await Prospect.get(id=enrollment.prospect_id)
    assert prospect.opted_out_channels == ["SMS"] and prospect.conversation_state == "AWAITING_REPLY"
    assert (await Message.get(id=queued)).state == "CANCELLED"
    assert await Message.filter(direction="INBOUND", body="OPT-OUT").count() == 1


@pytest.mark.parametrize(
    "name",
    [
        "../inbound_email/reply_please_stop.eml",
        "outlook_html_de_unsubscribe.eml",  # not threaded: routed by its sender's address
        "apple_plain_fr_unsubscribe.eml",
    ],
)
async def test_an_emailed_unsubscribe_request_opts_out_of_email(
    org: Org, clock: FrozenClock, settings: Settings, live_server: str, name: str
) -> None:
    # The organization's own address, claimed as updateOrganization does: an unthreaded reply goes there.
    changes = accounts.OrganizationChanges(email_from="sales@acme.example")
    await accounts.update_organization(actor=org.actor(Role.ADMIN, clock), changes=changes, settings=settings)
    enrollment, sent = await email_webhook._sent(org, clock, settings)
    raw = (REPLIES / name).read_bytes().replace(email_webhook.ORIGINAL.encode(), (sent.external_id or "").encode())
    async with httpx.AsyncClient(base_url=live_server) as http:
        answer = await email_webhook._post(http, raw)
    assert answer.json() == {"result": "recorded", "kind": "unsubscribe_request"}
    assert await _stage_and_reason(enrollment) == ("OPTED_OUT", "unsubscribe_request")
    prospect = await Prospect.get(id=enrollment.prospect_id)
    assert prospect.opted_out_channels == ["EMAIL"]
    assert prospect.conversation_state == "REPLY_NEEDED"  # their last message, stored as received
    [received] = await Message.filter(direction="INBOUND")
    assert (received.state, received.auto_reply, received.prospect_id) == ("RECEIVED", False, prospect.id)
    assert await StageChange.filter(enrollment_id=enrollment.id, to_stage="REPLIED").count() == 0


async def test_a_reply_quoting_our_unsubscribe_footer_is_a_reply(
    org: Org, clock: FrozenClock, settings: Settings, live_server: str
) -> None:
    enrollment, sent = await email_webhook._sent(org, clock, settings)
    raw = (REPLIES / "gmail_html_quoted_footer.eml").read_bytes()
    raw = raw.replace(email_webhook.ORIGINAL.encode(), (sent.external_id or "").encode())
    async with httpx.AsyncClient(base_url=live_server) as http:
        answer = await email_webhook._post(http, raw)
    assert answer.json() == {"result": "recorded", "kind": "reply"}
    assert await _stage_and_reason(enrollment) == ("REPLIED", "replied")
    assert (await Prospect.get(id=enrollment.prospect_id)).opted_out_channels == []


SMS_STEPS = [StepSpec(StepType.SMS, 0, body="Hi {{ first_name }}"), StepSpec(StepType.SMS, 3600, body="Still there?")]
EMAIL_STEPS = [
    StepSpec(StepType.EMAIL, 0, body="Hello", subject="Hi"),
    StepSpec(StepType.EMAIL, 3600, body="b", subject="s"),
]
RECORDED = "message { body state autoReply } prospect { conversationState }"


async def test_stop_through_the_api_opts_out_of_sms_as_the_webhook_does(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    [enrollment] = await setup(org, clock, steps=SMS_STEPS)
    recorded = await mutate(
        gql,
        org.tokens[Role.AGENT],
        "recordInboundMessage",
        RECORDED,
        channel="SMS",
        body=" Stop.",
        **{"from": "+12025550143"},
    )
    assert recorded["errors"] == [] and recorded["message"]["state"] == "RECEIVED"
    assert recorded["prospect"]["conversationState"] == "NEW"  # a keyword is not a reply
    assert await _stage_and_reason(enrollment) == ("OPTED_OUT", "opted_out")
    assert (await Prospect.get(id=enrollment.prospect_id)).opted_out_channels == ["SMS"]

    await mutate(
        gql,
        org.tokens[Role.AGENT],
        "recordInboundMessage",
        "message { id }",
        channel="SMS",
        body="START",
        **{"from": "+12025550143"},
    )
    assert (await Prospect.get(id=enrollment.prospect_id)).opted_out_channels == []


async def test_an_unsubscribe_request_through_the_api_opts_out_of_email(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    [enrollment] = await setup(org, clock, steps=EMAIL_STEPS)
    body = "Hi,\n\nplease remove me from your list.\n\nOn Mon, Sam wrote:\n> Great to meet you"
    recorded = await mutate(
        gql,
        org.tokens[Role.AGENT],
        "recordInboundMessage",
        RECORDED,
        channel="EMAIL",
        body=body,
        **{"from": "ada@client.example"},
    )
    assert recorded["errors"] == [] and recorded["message"] == {"body": body, "state": "RECEIVED", "autoReply": False}
    assert recorded["prospect"]["conversationState"] == "REPLY_NEEDED"
    assert await _stage_and_reason(enrollment) == ("OPTED_OUT", "unsubscribe_request")
    assert (await Prospect.get(id=enrollment.prospect_id)).opted_out_channels == ["EMAIL"]


async def test_an_email_saying_stop_through_the_api_opts_out_of_email_and_an_auto_reply_never(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    [enrollment] = await setup(org, clock, steps=EMAIL_STEPS)
    token = org.tokens[Role.AGENT]
    ada = {"from": "ada@client.example"}
    before = await _stage_and_reason(enrollment)
    await mutate(
        gql, token, "recordInboundMessage", "message { id }", channel="EMAIL", body="Unsubscribe", autoReply=True, **ada
    )
    assert await _stage_and_reason(enrollment) == before
    await mutate(
        gql, token, "recordInboundMessage", "message { id }", channel="EMAIL", body="STOP\n\nSent from my iPhone", **ada
    )
    assert await _stage_and_reason(enrollment) == ("OPTED_OUT", "unsubscribe_request")
    assert (await Prospect.get(id=enrollment.prospect_id)).opted_out_channels == ["EMAIL"]
