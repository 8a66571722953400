"""The return date an out-of-office reply gives (contract part 60): a corpus of
auto-replies in English, German, French and Spanish, written for these tests as
mail systems and people write them (greetings, signatures, quoted mail, two
languages in one), each with the day its sender is back, or None.

All are received on Tuesday 1 December 2026 at 10:00 in Berlin (09:00 UTC) by an
organization in Europe/Berlin unless a case says otherwise. "until X" means back
the day after X; "back on X", the day X (app/messaging/return_dates.py)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from app.messaging import return_dates

BERLIN = ZoneInfo("Europe/Berlin")
RECEIVED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

CORPUS: dict[str, tuple[str, date | None]] = {
    # The phrases.
    "en_until_weekday_month_day": (
        "Hello,\n\nThank you for your message. I am out of the office until Monday, December 14 with limited "
        "access to email.\nFor urgent matters please contact sales@client.example.\n\nBest regards,\nAda King",
        date(2026, 12, 15),
    ),
    "en_back_on_numeric": (
        "Hi there,\n\nI'm away at the moment, back on 14/12. I'll get to your email then.\n\nCheers\nAda",
        date(2026, 12, 14),
    ),
    "en_returning_ordinal": (
        "Thanks for reaching out! I'm on holiday and returning January 5th.\n\n-- \nAda King | Engines Ltd",
        date(2027, 1, 5),
    ),
    "de_bis_zum_numeric": (
        "Guten Tag,\n\nvielen Dank für Ihre Nachricht. Ich bin bis zum 14.12. nicht im Büro und habe keinen "
        "Zugriff auf meine E-Mails.\n\nMit freundlichen Grüßen\nAda König",
        date(2026, 12, 15),
    ),
    "fr_de_retour": (
        "Bonjour,\n\nJe suis absente du bureau, de retour le 14 décembre.\nPour toute urgence, contactez "
        "accueil@client.example.\n\nCordialement,\nAda Roi",
        date(2026, 12, 14),
    ),
    "es_fuera_hasta": (
        "Hola,\n\nGracias por tu correo. Estaré fuera hasta el 14 de diciembre sin acceso al correo.\n\n"
        "Un saludo,\nAda Rey",
        date(2026, 12, 15),
    ),
    # English, as Outlook, Gmail and people write them.
    "en_outlook_until_day_month": (
        "Thank you for your email. I am out of the office until Friday 11 December with limited access to "
        "email.\n\nFor anything urgent, please contact support@client.example.\n\nKind regards,\nAda Lovelace",
        date(2026, 12, 12),
    ),
    "en_annual_leave_back_on": (
        "Hi,\n\nI'm on annual leave and will be back in the office on Wednesday 9th December.\n"
        "Please expect a delay in my response.\n\nThanks,\nBob",
        date(2026, 12, 9),
    ),
    "en_will_return_with_year": (
        "I am currently out of the office with no access to email. I will return on Monday 4 January 2027.\n\n"
        "For urgent enquiries please call reception on +44 20 7946 0000.\n\nAda Lovelace\nHead of Support",
        date(2027, 1, 4),
    ),
    "en_until_through_month_name_first": (
        "Greetings,\n\nI'll be traveling through December 18 and will have intermittent access to email.\n\n"
        "Regards,\nCarol",
        date(2026, 12, 19),
    ),
    "en_back_and_until_back_wins": (
        "Hello,\n\nI'm out of the office from 1 December until 10 December and back on 14 December "
        "(the days between are a conference).\n\nThanks,\nDan",
        date(2026, 12, 14),
    ),
    "en_no_date": (
        "Hello,\n\nI am currently out of the office with limited access to email. I will respond as soon as "
        "possible.\n\nBest,\nEve",
        None,
    ),
    "en_until_further_notice": (
        "Thank you for your email. I am on parental leave until further notice. Please contact "
        "team@client.example instead.\n\nFrank",
        None,
    ),
    "en_past_date_with_year": (
        "I am out of the office until 20 November 2026.\n\nKind regards,\nGrace",
        None,
    ),
    "en_more_than_90_days": (
        "Hello,\n\nI'm on sabbatical leave and will be back on 1 June 2027.\n\nHenry",
        None,
    ),
    "en_ambiguous_day_first": (
        "Hi,\n\nI'm away on vacation, back on 05/01. Happy holidays!\n\nIrene",
        date(2027, 1, 5),
    ),
    "en_ticket_system_not_away": (
        "Thank you for contacting support. We have received your request and will get back to you by "
        "4 December.\n\nThe Client Example support team",
        None,
    ),
    "en_quoted_text_ignored": (
        "I'm out of the office with no email access.\n\nJack\n\n"
        "On Mon, 30 Nov 2026 at 09:00, Sales <sales@acme.example> wrote:\n"
        "> Could we talk before December 10? I am back on 3 December myself.\n",
        None,
    ),
    "en_bare_weekday_not_read": (
        "Hi,\n\nI'm out of the office today and back Monday.\n\nKate",
        None,
    ),
    "en_tomorrow": (
        "I am out of the office today, back tomorrow.\n\nLiam",
        date(2026, 12, 2),
    ),
    # German.
    "de_urlaub_zurueck_am": (
        "Sehr geehrte Damen und Herren,\n\nich befinde mich im Urlaub und bin ab dem 21.12.2026 wieder "
        "erreichbar.\nIn dringenden Fällen wenden Sie sich bitte an info@client.example.\n\n"
        "Mit freundlichen Grüßen\nMax Mustermann",
        date(2026, 12, 21),
    ),
    "de_am_wieder_im_buero": (
        "Hallo,\n\nich bin auf Dienstreise und am 9.12. wieder im Büro.\n\nViele Grüße\nJonas",
        date(2026, 12, 9),
    ),
    "de_bis_einschliesslich_month_name": (
        "Vielen Dank für Ihre E-Mail. Ich bin bis einschließlich 18. Dezember abwesend.\n\nBeste Grüße\nLena",
        date(2026, 12, 19),
    ),
    "de_then_en_two_languages": (
        "Ich bin bis 23.12. nicht im Haus. Ihre Nachricht wird nicht weitergeleitet.\n\n"
        "I am out of the office until 23 December. Your message will not be forwarded.\n\nPaul Weber",
        date(2026, 12, 24),
    ),
    "de_no_date": (
        "Guten Tag,\n\nich bin derzeit nicht im Büro und lese meine E-Mails nur unregelmäßig.\n\n"
        "Freundliche Grüße\nSophie",
        None,
    ),
    "de_year_in_january": (
        "Hallo zusammen,\n\nich bin im Weihnachtsurlaub und ab dem 07.01.2027 zurück.\n\nGruß\nTim",
        date(2027, 1, 7),
    ),
    # French.
    "fr_absent_jusqu_au": (
        "Bonjour,\n\nJe suis absent jusqu'au 4 janvier inclus et n'aurai pas accès à mes e-mails.\n\n"
        "Bien à vous,\nLouis Martin",
        date(2027, 1, 5),
    ),
    "fr_conges_retour_numeric": (
        "Bonjour,\n\nEn congés, retour prévu le 15/12.\n\nCordialement\nCamille",
        date(2026, 12, 15),
    ),
    "fr_typographic_apostrophe_with_year": (
        "Madame, Monsieur,\n\nJe suis en déplacement jusqu\u2019au mercredi 16 décembre 2026.\n\nJulie Bernard",
        date(2026, 12, 17),
    ),
    "fr_no_date": (
        "Bonjour,\n\nJe suis actuellement absente. Je vous répondrai dès mon retour.\n\nManon",
        None,
    ),
    "fr_past": (
        "Bonjour,\n\nJe suis en congés, de retour le 30 novembre 2026.\n\nHugo",
        None,
    ),
    # Spanish.
    "es_vacaciones_de_vuelta": (
        "Hola,\n\nEstoy de vacaciones y estaré de vuelta el 8 de diciembre.\n\nSaludos,\nLucía García",
        date(2026, 12, 8),
    ),
    "es_ausente_hasta_numeric": (
        "Buenos días,\n\nEstaré ausente hasta el 11/12. Para asuntos urgentes escriba a "
        "soporte@client.example.\n\nAtentamente,\nJavier",
        date(2026, 12, 12),
    ),
    "es_regreso_weekday_and_year": (
        "Gracias por su mensaje. Me encuentro fuera de la oficina; regreso el lunes 4 de enero de 2027.\n\n"
        "Carmen López",
        date(2027, 1, 4),
    ),
    "es_no_date": (
        "Hola,\n\nEstoy fuera de la oficina. Responderé a tu correo lo antes posible.\n\nPablo",
        None,
    ),
    "es_far_ahead": (
        "Hola,\n\nEstoy de baja por permiso hasta el 30 de junio de 2027.\n\nElena",
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_the_corpus_gives_its_return_days(name: str) -> None:
    text, expected = CORPUS[name]

    found = return_dates.read(text, received=RECEIVED, zone=BERLIN)

    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert found.returns_at == datetime(expected.year, expected.month, expected.day, tzinfo=BERLIN)
        assert found.resumes_at == datetime(expected.year, expected.month, expected.day, 8, tzinfo=BERLIN)


def test_the_corpus_has_at_least_thirty_replies_in_four_languages() -> None:
    assert len(CORPUS) >= 30
    assert {name[:3] for name in CORPUS} == {"en_", "de_", "fr_", "es_"}


def test_an_ambiguous_number_is_month_first_in_english_where_the_organization_writes_so() -> None:
    text = "Hi,\n\nI'm away on vacation, back on 01/02. Happy holidays!\n\nIrene"
    new_york = ZoneInfo("America/New_York")

    us = return_dates.read(text, received=RECEIVED, zone=new_york, month_first=return_dates.month_first("US"))
    uk = return_dates.read(text, received=RECEIVED, zone=BERLIN, month_first=return_dates.month_first("GB"))
    impossible = return_dates.read(
        "Out of office until 12/14.", received=RECEIVED, zone=BERLIN, month_first=return_dates.month_first("GB")
    )
    german = return_dates.read("Ich bin bis 01.05. im Urlaub.", received=RECEIVED, zone=BERLIN, month_first=True)

    assert us is not None and us.returns_at == datetime(2027, 1, 2, tzinfo=new_york)
    assert uk is not None and uk.returns_at == datetime(2027, 2, 1, tzinfo=BERLIN)
    assert impossible is not None and impossible.returns_at == datetime(2026, 12, 15, tzinfo=BERLIN)
    assert german is None  # 1 May is more than 90 days ahead: "." is day first even where English is not


def test_a_date_without_a_year_is_the_next_one_in_the_organizations_zone() -> None:
    # 23:30 UTC on 13 December is already the 14th in Tokyo: "back on 14/12" is back today there, so ignored,
    # and a year ahead is too far.
    late = datetime(2026, 12, 13, 23, 30, tzinfo=UTC)
    text = "I'm away, back on 14/12."

    in_utc = return_dates.read(text, received=late, zone=ZoneInfo("UTC"))
    in_tokyo = return_dates.read(text, received=late, zone=ZoneInfo("Asia/Tokyo"))

    assert in_utc is not None and in_utc.resumes_at == datetime(2026, 12, 14, 8, tzinfo=UTC)
    assert in_tokyo is None


def test_reading_a_long_reply_stays_cheap() -> None:
    """The text read is bounded (its first lines, a few phrases, a few words after
    each): a reply padded with thousands of dated lines costs what a short one does."""
    padded = "I am out of the office until 14 December.\n" + "Until 3 March, back on 4 May, bis 5.6. " * 5000
    return_dates.read(padded, received=RECEIVED, zone=BERLIN)  # dateparser's languages loaded

    started = time.perf_counter()
    for _ in range(20):
        found = return_dates.read(padded, received=RECEIVED, zone=BERLIN)
    per_reply = (time.perf_counter() - started) / 20

    assert found is not None and found.returns_at == datetime(2026, 12, 15, tzinfo=BERLIN)
    assert per_reply < 0.05, per_reply
