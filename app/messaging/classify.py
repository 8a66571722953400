"""What a received message means (R6.2, R12): one classifier for the Twilio
webhook, the email webhook and ``recordInboundMessage`` alike.

- An SMS is an opt-out keyword (R6.2's list), an opt-in keyword, or a reply.
- An email reply (not an auto-reply) is an unsubscribe request when the first
  lines of what its sender wrote (quoted text and signature cut off) ask, as a
  whole sentence, to be removed: "unsubscribe", "please remove me from your
  list", "stop emailing me", and the same in German, French and Spanish; or
  when its first line is just an opt-out keyword ("STOP", "Unsubscribe").

Precision comes first: a false opt-out loses a customer conversation, while a
missed one is still stopped by the unsubscribe link every email carries. So a
sentence counts only if all of it is a request (greetings, thanks and "please"
around it allowed): "don't stop", "please don't unsubscribe me", "remove John
from the thread", "don't email me, call me" stay replies.

Pure functions, no I/O: the email webhook runs them off the event loop.
"""

from __future__ import annotations

import html
import re
import unicodedata
from enum import StrEnum

from app.prospects.models import Channel


class Kind(StrEnum):
    """What a received message means (R6): a reply, an auto-reply, an SMS keyword,
    or an email asking to be unsubscribed."""

    REPLY = "REPLY"
    AUTO_REPLY = "AUTO_REPLY"
    OPT_OUT = "OPT_OUT"
    OPT_IN = "OPT_IN"
    UNSUBSCRIBE_REQUEST = "UNSUBSCRIBE_REQUEST"


OPT_OUT = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout", "opt out"})
OPT_IN = frozenset({"start", "unstop", "yes"})
EMAIL_KEYWORDS = frozenset({"stop", "stopall", "unsubscribe", "optout", "opt out"})
"""The opt-out keywords an email's first line may be: not CANCEL, END, QUIT or
REVOKE, which carriers honour by SMS but which, alone atop an email, rather
answer a meeting invitation or an order than ask to hear no more."""

REPLY_LINES = 5
"""The lines of an email reply read for an unsubscribe request: a greeting, the
request, maybe a sentence around it. Further down, people discuss, quote or
forward (a colleague's "remove me" in a long thread is not this sender's), and
what was never found is still caught by the unsubscribe link."""
SCAN_CHARS = 20_000
"""Read of a text at most: REPLY_LINES lines, quoting lines and blank lines among."""
SENTENCE_CHARS = 160
"""A longer sentence is not a clear request; it bounds the patterns' work too."""


def keyword(body: str) -> Kind:
    """OPT_OUT, OPT_IN or REPLY. The body is compared after Unicode compatibility
    folding (full-width STOP, U+FF33 U+FF34 U+FF2F U+FF30, is STOP), case-folding, dropping punctuation and
    trimming, so " Stop." and "OPT-OUT" count; "please stop" is a reply."""
    words = _words(body)
    if words in OPT_OUT:
        return Kind.OPT_OUT
    if words in OPT_IN:
        return Kind.OPT_IN
    return Kind.REPLY


def inbound(channel: Channel, body: str, *, subject: str | None = None, auto_reply: bool = False) -> Kind:
    """What a received message means, by channel: an auto-reply is only that (the
    sender's mail system wrote it, not the sender)."""
    if auto_reply:
        return Kind.AUTO_REPLY
    if channel is Channel.SMS:
        return keyword(body)
    return email_reply(body, subject=subject)


def email_reply(text: str, *, subject: str | None = None) -> Kind:
    """UNSUBSCRIBE_REQUEST or REPLY, for the text of an email reply (plain, or made
    from HTML by ``html_reply``) and its subject when it is not a reply's or a
    forward's ("Re: ..." quotes our subject)."""
    lines = reply_lines(text)
    if subject and not _ANSWERING.match(subject):
        lines = [subject[:SENTENCE_CHARS], *lines]
        firsts = lines[:2]  # the subject and the body's first line
    else:
        firsts = lines[:1]
    if any(_words(line) in EMAIL_KEYWORDS for line in firsts):
        return Kind.UNSUBSCRIBE_REQUEST
    if any(_REQUEST.fullmatch(s) for line in lines for s in _sentences(line)):
        return Kind.UNSUBSCRIBE_REQUEST
    return Kind.REPLY


def _words(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(" " if unicodedata.category(c)[0] in "PSZ" else c for c in folded)
    return " ".join(kept.split())


_ANSWERING = re.compile(r"\s*(?:re|aw|antw|sv|vs|rv|ref|tr|fw|fwd|wg|enc|rif)\s*(?:\[\d+\])?\s*:", re.IGNORECASE)

# Where what the sender wrote ends: an attribution line ("On ... wrote:" in the
# four languages), a forwarded or Outlook original, a signature.
_ATTRIBUTION = re.compile(
    r"(?:wrote|schrieb|a\s+[ée]crit|escribi[óo]|ha\s+escrito)\b[^\n]{0,200}:\s*$"
    r"|^\s*(?:on|am|le|el)\s[^\n]{0,300}\b(?:wrote|schrieb|a\s+[ée]crit|escribi[óo])\b",
    re.IGNORECASE,
)
_ORIGINAL = re.compile(
    r"^\s*(?:-{2,}\s*(?:original message|urspr[üu]ngliche nachricht|message d'origine|mensaje original"
    r"|forwarded message|weitergeleitete nachricht|message transf[ée]r[ée]|mensaje reenviado)\s*-{2,}"
    r"|_{10,}|(?:from|von|de|sent|gesendet|envoy[ée]|enviado)\s*:\s\S)",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(r"^(?:--|-- )$|^\s*(?:sent from my |von meinem |envoy[ée] de mon |enviado desde mi )", re.I)


def reply_lines(text: str, limit: int = REPLY_LINES) -> list[str]:
    """The first ``limit`` non-blank lines the sender wrote: lines quoted with ">"
    skipped, everything from an attribution line ("On ... wrote:", "Am ...
    schrieb ...:", "Le ... a écrit :", "El ... escribió:"), an original's header
    block ("-----Original Message-----", "From: ...") or a signature ("-- ") on
    cut off."""
    kept: list[str] = []
    for line in text[:SCAN_CHARS].splitlines():
        if line.lstrip().startswith(">"):
            continue
        if _ATTRIBUTION.search(line[:400]) or _ORIGINAL.match(line) or _SIGNATURE.match(line):
            break
        if line.strip():
            kept.append(line.strip())
            if len(kept) == limit:
                break
    return kept


def _sentences(line: str) -> list[str]:
    """The line's sentences, normalized for the patterns: case-folded, accents and
    punctuation but apostrophes and inner hyphens dropped ("Désabonnez-moi !" is
    "desabonnez-moi", a typographic apostrophe is "'")."""
    folded = unicodedata.normalize("NFKC", line).casefold()
    folded = folded.translate(_APOSTROPHES)
    plain = "".join(c for c in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(c))
    found = []
    for sentence in _SENTENCE_END.split(plain):
        words = _NOT_WORD.sub(" ", sentence)
        words = _LOOSE.sub(" ", words)
        words = " ".join(words.split())
        if words and len(words) <= SENTENCE_CHARS:
            found.append(words)
    return found


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00b4": "'", "`": "'"})
_SENTENCE_END = re.compile(r"[.!?;:\u00a1\u00bf]+")
_NOT_WORD = re.compile(r"[^\w'-]+")
_LOOSE = re.compile(r"(?<![^\W_])['-]+|['-]+(?![^\W_])|_+")  # quotes and dashes not inside a word


def _any(*alternatives: str) -> str:
    return "(?:" + "|".join(alternatives) + ")"


_EMAILS = r"(?:e-?mails?|emails?|e-mail-?s|mails?|messages?|newsletters?)"
_LIST_EN = (
    r"(?:(?:this|your|the|these|those|all|any|all your|all of your|all future|future|all further|further|all these)"
    r"(?: (?:mailing|email|e-mail|contact|marketing|distribution|sales|newsletter|outreach))?"
    r" (?:list|lists|database|mailings|emails|e-mails|mails|messages|newsletters?|communications|sequence"
    r"|campaign|distribution|correspondence|system))"
)
_ME_EN = r"(?:me|us|my (?:email|e-mail|email address|e-mail address|address|details|contact details|data|name))"
_ENGLISH = [
    rf"unsubscribe(?: me| us)?(?: from {_LIST_EN})?",
    rf"(?:remove|delete|drop|erase) {_ME_EN}(?: from {_LIST_EN})?",
    rf"take {_ME_EN} off(?: of)?(?: {_LIST_EN})?",
    rf"opt (?:me |us )?out(?: of {_LIST_EN})?|opt-out(?: of {_LIST_EN})?",
    r"stop (?:e-?mailing|emailing|mailing|contacting|messaging|spamming|bothering|writing to|writing) (?:me|us)",
    rf"stop sending (?:me |us )?(?:(?:these|this|any|more|your|marketing) )?{_EMAILS}",
    r"stop sending (?:me |us )?(?:these|this|them)",
    r"(?:do not|don't|dont|never) (?:e-?mail|email|contact|message|write to|spam) (?:me|us)"
    r" (?:again|anymore|any more|ever again|any further)",
    rf"(?:do not|don't|dont) send (?:me |us )?(?:any )?(?:more|further|other) {_EMAILS}",
    rf"no (?:more|further) {_EMAILS}",
    rf"(?:i|we) (?:do not|don't|dont) want (?:to (?:receive|get) )?(?:any )?(?:more|further) {_EMAILS}(?: from you)?",
    rf"(?:i|we)(?: want| would like|'d like| wish| need| ask) to be (?:removed|taken off|unsubscribed|deleted)"
    rf"(?: (?:from|off) {_LIST_EN})?",
]
_LIST_DE = (
    r"(?:ihrer|ihrem|ihren|eurer|eurem|deiner|deinem|der|dem|den|diesem|dieser)"
    r" (?:[a-z]+-)*(?:liste|verteiler|verteilerliste|mailingliste|adressliste|kontaktliste|datenbank|newsletter|kartei)"
)
_MAILS_DE = r"(?:e-?mails|emails|mails|nachrichten|werbung|werbemails|newsletter)"
_GERMAN = [
    rf"(?:mich )?(?:(?:von|aus) {_LIST_DE} )?abmelden",
    rf"(?:ich )?(?:mochte|will|wurde) (?:mich )?(?:gerne |gern )?(?:bitte )?(?:(?:von|aus) {_LIST_DE} )?abmelden",
    rf"melden sie mich (?:bitte )?(?:(?:von|aus) {_LIST_DE} )?ab",
    rf"keine (?:weiteren {_MAILS_DE}(?: mehr)?|{_MAILS_DE} mehr)",
    rf"(?:entfernen|loschen|streichen) sie mich(?: bitte)?(?: (?:aus|von) {_LIST_DE})?",
    rf"nehmen sie mich (?:bitte )?(?:aus|von) {_LIST_DE}(?: raus| heraus)?",
    rf"tragen sie mich (?:bitte )?(?:aus {_LIST_DE} )?aus|austragen",
    rf"ich mochte (?:(?:aus|von) {_LIST_DE} )?(?:ausgetragen|entfernt|geloscht|abgemeldet) werden",
    rf"(?:horen sie|hort) auf mir {_MAILS_DE} zu (?:schicken|senden)",
    rf"(?:schicken|senden) sie mir (?:bitte )?keine (?:weiteren )?{_MAILS_DE}(?: mehr)?",
    rf"ich mochte keine (?:weiteren )?{_MAILS_DE}(?: mehr)? (?:erhalten|bekommen)",
    r"(?:kontaktieren|schreiben|mailen) sie mich (?:bitte )?nicht mehr",
]
_LIST_FR = (
    r"(?:de |d')?(?:votre|ta|cette|la|vos|tes|ces) (?:liste|base|fichier|mailing|newsletter|liste de diffusion"
    r"|base de donnees|liste d'envoi|liste de contacts|liste de mailing)"
)
_MAILS_FR = r"(?:e-?mails|emails|mails|courriels|messages|newsletters)"
_FRENCH = [
    rf"(?:me )?(?:desinscrire|desabonner)(?: {_LIST_FR})?",
    rf"(?:desinscrivez|desabonnez|retirez|supprimez|enlevez|effacez)-moi(?: {_LIST_FR})?",
    rf"me (?:retirer|supprimer|enlever|effacer) {_LIST_FR}",
    r"desinscription|desabonnement",
    rf"(?:arretez|cessez|arrete|arretes) de (?:m'(?:envoyer|ecrire)|me (?:contacter|spammer|relancer|solliciter))"
    rf"(?: (?:des|vos|de) {_MAILS_FR})?",
    rf"ne (?:m'(?:envoyez|ecrivez)|me (?:contactez|relancez|sollicitez)) plus(?: (?:de |d'){_MAILS_FR}| d'{_MAILS_FR})?",
    rf"ne plus (?:m'(?:envoyer|ecrire)|me (?:contacter|relancer|solliciter))(?: (?:de |d'){_MAILS_FR}| d'{_MAILS_FR})?",
    rf"je ne (?:veux|souhaite) plus (?:recevoir|etre contacte) ?(?:(?:vos|de|ces|d') ?{_MAILS_FR})?",
]
_LIST_ES = (
    r"(?:de )?(?:su|tu|esta|la|sus|vuestra) (?:lista|base de datos|lista de correo|lista de distribucion"
    r"|lista de contactos|base)"
)
_MAILS_ES = r"(?:correos|correos electronicos|e-?mails|emails|mails|mensajes)"
_SPANISH = [
    rf"(?:dar|darme|denme|dame|deme|den|darnos|dennos) de baja(?: mi (?:correo|email|e-mail|direccion))?(?: {_LIST_ES})?",
    r"baja",
    rf"(?:eliminarme|borrarme|sacarme|quitarme|eliminenme|borrenme|saquenme|quitenme|eliminame|borrame|sacame|quitame)"
    rf" {_LIST_ES}",
    rf"(?:eliminen|borren|quiten|saquen|eliminar|borrar) mi (?:correo|email|e-mail|direccion)(?: {_LIST_ES})?",
    rf"(?:dejen|deje|deja|dejad) de (?:enviarme|mandarme|escribirme|contactarme)(?: (?:mas )?{_MAILS_ES})?",
    rf"no me (?:envien|manden|envies|mandes|escriban|contacten) mas(?: {_MAILS_ES})?",
    rf"no (?:quiero|deseo) recibir mas {_MAILS_ES}",
    r"desuscribirme|(?:anular|cancelar) mi suscripcion",
]
_GREETING = r"(?:(?:hi|hello|hey|dear|hallo|liebe|lieber|bonjour|hola|estimado|estimada) [a-z'-]+ )?"
_PLEASE = r"(?:(?:please|pls|plz|kindly|just|bitte|veuillez|merci de|svp|por favor|favor de) )*"
_ASKING = _any(
    r"(?:can|could|would|will) you (?:please |kindly )?",
    r"(?:i|we)(?: would like|'d like| want| wish| need| am asking| ask) (?:you )?to ",
    r"(?:je|nous) (?:veux|voudrais|souhaite|souhaiterais|desire|voulons|souhaitons) ",
    r"(?:pouvez|pourriez)-vous ",
    r"(?:quiero|quisiera|deseo|me gustaria|necesito|queremos) ",
    r"(?:pueden|podrian|puede|podria|podrias|puedes) ",
)
_FILLER = _any(
    r"hi|hello|hey|dear|sir|madam",
    r"thanks|thank you|no thanks|no thank you|not interested|(?:i'm|i am|we're|we are) not interested|sorry|ok|okay",
    r"hallo|guten tag|danke|nein danke|kein interesse|bonjour|merci|non merci|pas interesse",
    r"hola|gracias|no gracias|no me interesa|no estoy interesad[oa]|buenos dias|buenas tardes",
    r"yes|ja|oui",
)
_SUFFIX = _any(
    r"please|thanks|thank you|thx|asap|immediately|now|right now|again|for good|permanently|for me",
    r"bitte|danke|vielen dank|sofort|s'il vous plait|svp|merci|immediatement|por favor|gracias|ya|inmediatamente",
)
_REQUEST = re.compile(
    rf"{_GREETING}(?:{_FILLER}(?: (?:but|and|so|aber|und|mais|et|pero|y))? )*{_PLEASE}(?:{_ASKING})?{_PLEASE}"
    rf"{_any(*_ENGLISH, *_GERMAN, *_FRENCH, *_SPANISH)}(?: {_SUFFIX})*"
)


def html_reply(markup: str) -> str:
    """The text an HTML reply's sender wrote, line by line: the body up to the
    first quoted part (a <blockquote>, Gmail's, Outlook's, Thunderbird's, Yahoo's
    quote containers), tags gone, block ends as line ends. mime.text keeps no
    line structure (tags become spaces), and an HTML quote carries no ">"."""
    markup = markup[: SCAN_CHARS * 5]
    lowered = markup.lower()
    body = lowered.find("<body")
    start = 0 if body < 0 else body
    ends = [i for i in (lowered.find(marker, start) for marker in _QUOTE_MARKERS) if i >= 0]
    part = _visible(markup[start : min(ends, default=len(markup))])
    part = _BLOCK_END.sub("\n", part)
    return html.unescape(_TAG.sub(" ", part))


_QUOTE_MARKERS = (
    "<blockquote",
    "gmail_quote",
    "gmail_attr",
    "divrplyfwdmsg",
    "appendonsend",
    "moz-cite-prefix",
    "yahoo_quoted",
    "<hr",
)
_HIDDEN = re.compile(r"<(style|script|head)\b", re.IGNORECASE)
_BLOCK_END = re.compile(r"<(?:br|/p|/div|/li|/tr|/h[1-6]|/table|p|div|li|tr)\b[^<>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^<>]*>")


def _visible(markup: str) -> str:
    """Without styles, scripts and a head, in time linear in its length: each is
    cut to its closing tag, found by one search (an unclosed one hides the rest)."""
    kept = []
    start = 0
    while (hidden := _HIDDEN.search(markup, start)) is not None:
        kept.append(markup[start : hidden.start()])
        close = re.compile(f"</{hidden.group(1)}", re.IGNORECASE).search(markup, hidden.end())
        if close is None:
            return "".join(kept)
        end = markup.find(">", close.end())
        start = len(markup) if end < 0 else end + 1
    kept.append(markup[start:])
    return "".join(kept)
