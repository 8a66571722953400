"""Where a webhook may go: http(s) URLs whose host resolves only to public
addresses, unless private ones are allowed (WEBHOOK_ALLOW_PRIVATE, for
development). Checked at registration and again at each send, where the
request then goes to the very address that was checked (no DNS rebinding)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

from app.errors import InvalidInput

MAX_URL = 2000


def parse(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable webhook URL, or InvalidInput."""
    url = url.strip()
    if len(url) > MAX_URL:
        raise InvalidInput(f"The URL is longer than {MAX_URL} characters.", ["url"])
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidInput("The URL is not valid.", ["url"]) from error
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("The URL must be http:// or https:// with a host.", ["url"])
    if parts.username or parts.password:
        raise InvalidInput("The URL must not carry credentials.", ["url"])
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def resolve(url: str, *, allow_private: bool) -> str:
    """The URL with its host replaced by the address to send to, after checking
    every address the host resolves to."""
    scheme, host, port = parse(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise InvalidInput(f"The host {host!r} does not resolve.", ["url"]) from error
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise InvalidInput(f"The host {host!r} does not resolve.", ["url"])
    if not allow_private and not all(_public(address) for address in addresses):
        raise InvalidInput("The URL resolves to a private or loopback address; webhooks go to public ones.", ["url"])
    address = addresses[0]
    netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    parts = urlsplit(url.strip())
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
