"""The HTTP endpoints of messaging, outside GraphQL: the unsubscribe page and its
one-click POST (R6.3), and the inbound webhooks (R6.1, R6.2). Each reads the
request, calls one service, and answers; the rules live in the services."""

from __future__ import annotations

import hmac
import logging
from html import escape

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from app.clock import Clock
from app.config import Settings
from app.messaging import email_routing, mime, twilio, unsubscribe
from app.state import state_of

logger = logging.getLogger("leadline.webhooks")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}
button{{font:inherit;padding:.5rem 1rem}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""


def _page(title: str, body: str) -> HTMLResponse:
    # No cookies, no scripts; the page may be fetched by mail scanners, so GET changes nothing.
    return HTMLResponse(
        PAGE.format(title=escape(title), body=body),
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _masked(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}{'*' * max(len(local) - 1, 1)}@{domain}" if domain else "your address"


def _context(request: Request) -> tuple[Settings, Clock]:
    state = state_of(request.app)
    return state.settings, state.clock


async def unsubscribe_page(request: Request) -> Response:
    """GET: asks for confirmation. POST (the RFC 8058 one-click request, or the page's
    button): unsubscribes. A forged or unknown token is the same 404 as any page."""
    settings, clock = _context(request)
    token = request.path_params["token"]
    if request.method == "POST":
        found = await unsubscribe.unsubscribe(settings.secret_key, token, clock)
    else:
        found = await unsubscribe.subscriber(settings.secret_key, token)
    if found is None:
        raise HTTPException(status_code=404)
    who, sender = escape(_masked(found.email)), escape(found.organization)
    if found.unsubscribed:
        return _page("You are unsubscribed", f"<p>{sender} will send no more email to {who}.</p>")
    return _page(
        "Unsubscribe?",
        f"<p>Stop email from {sender} to {who}?</p>"
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        "<button>Unsubscribe</button></form>",
    )


EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


async def _twilio_form(request: Request) -> dict[str, str] | None:
    """The form of a request Twilio signed for PUBLIC_URL + path; None if the
    signature is missing or wrong (or no TWILIO_AUTH_TOKEN is set to check it)."""
    settings, _ = _context(request)
    form = await request.form()
    params = [(name, value) for name, value in form.multi_items() if isinstance(value, str)]
    url = settings.public_url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not twilio.signed(settings.twilio_auth_token, url, params, request.headers.get("X-Twilio-Signature")):
        logger.warning("Twilio webhook %s refused: bad or missing signature", request.url.path)
        return None
    return dict(params)


async def twilio_sms(request: Request) -> Response:
    """An inbound SMS (R6.2). Answers empty TwiML: Twilio's own opt-out replies stand."""
    form = await _twilio_form(request)
    if form is None:
        return PlainTextResponse("Forbidden", status_code=403)
    _, clock = _context(request)
    await twilio.receive_sms(
        sid=form.get("MessageSid", ""),
        to=form.get("To", ""),
        sender=form.get("From", ""),
        body=form.get("Body", ""),
        clock=clock,
    )
    return Response(EMPTY_TWIML, media_type="text/xml")


async def twilio_status(request: Request) -> Response:
    """A delivery status callback for a message Leadline sent."""
    form = await _twilio_form(request)
    if form is None:
        return PlainTextResponse("Forbidden", status_code=403)
    await twilio.record_status(
        sid=form.get("MessageSid", ""), status=form.get("MessageStatus", ""), error_code=form.get("ErrorCode") or None
    )
    return Response(status_code=204)


MAX_EMAIL_BYTES = 25 * 1024 * 1024
"""The body cap of the email webhook (app/web.py's BodyLimit answers 413 past it)."""


async def email_inbound(request: Request) -> Response:
    """A raw RFC 5322 message (R6.1), authorized by ``Bearer $INBOUND_EMAIL_TOKEN``.
    Answers what Leadline made of it: recorded, duplicate or unrouted, and its kind;
    422 for a message it will not read (parts nested too deep, too many, or more
    CPU time than INBOUND_EMAIL_READ_SECONDS)."""
    settings, clock = _context(request)
    token = settings.inbound_email_token
    given = request.headers.get("Authorization", "")
    if not token or not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return JSONResponse({"error": "A valid Bearer token (INBOUND_EMAIL_TOKEN) is required."}, status_code=401)
    raw = await request.body()
    if not raw.strip():
        return JSONResponse({"error": "The body must be a raw email (message/rfc822)."}, status_code=400)
    try:
        received = await email_routing.receive_email(raw, clock=clock, cpu_seconds=settings.inbound_email_read_seconds)
    except mime.Unreadable as unreadable:
        return JSONResponse({"error": str(unreadable)}, status_code=422)
    return JSONResponse({"result": received.outcome.value, "kind": received.kind.value})
