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
URL_FIELD = ("url",)
"""Where a refused URL is named in the services' errors."""


def parse(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable webhook URL, or InvalidInput."""
    url = url.strip()
    if len(url) > MAX_URL:
        raise InvalidInput(f"The URL is longer than {MAX_URL} characters.", URL_FIELD)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidInput("The URL is not valid.", URL_FIELD) from error
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("The URL must be http:// or https:// with a host.", URL_FIELD)
    if parts.username or parts.password:
        raise InvalidInput("The URL must not carry credentials.", URL_FIELD)
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


_CARRYING_IPV4 = tuple(
    ipaddress.IPv6Network(block)
    for block in (
        "::/96",  # IPv4-compatible (deprecated), :: and ::1 among them
        "::ffff:0:0/96",  # IPv4-mapped
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b::/96",  # NAT64's well-known prefix: a DNS64 answer for an IPv4-only host
    )
)
"""IPv6 forms whose last 32 bits are the IPv4 address a packet ends up at."""
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NEVER_PUBLIC = tuple(
    ipaddress.ip_network(block)
    for block in (
        # Special-purpose blocks (IANA registries) that is_global misses in some Python versions.
        "0.0.0.0/8",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "192.88.99.0/24",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "2001::/23",  # IETF protocol assignments: Teredo (2001::/32) tunnels to a NATed client, ORCHID, benchmarking
        "2001:db8::/32",
        "3fff::/20",
    )
)


def _carried_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if any(ip in block for block in _CARRYING_IPV4):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour  # 2002::/16: 6to4 relays to the IPv4 address in bits 16-47


def _public(address: str) -> bool:
    """Whether a webhook may go to ``address``: a global unicast address outside
    every special-purpose block; an IPv6 form of an IPv4 address (mapped,
    compatible, translated, NAT64, 6to4) is judged by the IPv4 address it carries,
    and the rest of IPv6 must be in 2000::/3 (which leaves out ULAs, link-local,
    site-local, multicast, local-use NAT64 64:ff9b:1::/48 and every reserved block)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        carried = _carried_ipv4(ip)
        if carried is not None:
            ip = carried
        elif ip not in _GLOBAL_UNICAST:
            return False
    return ip.is_global and not ip.is_multicast and not any(ip in block for block in _NEVER_PUBLIC)


async def resolve(url: str, *, allow_private: bool) -> str:
    """The URL with its host replaced by the address to send to, after checking
    every address the host resolves to."""
    scheme, host, port = parse(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise InvalidInput(f"The host {host!r} does not resolve.", URL_FIELD) from error
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise InvalidInput(f"The host {host!r} does not resolve.", URL_FIELD)
    if not allow_private and not all(_public(address) for address in addresses):
        raise InvalidInput("The URL resolves to a private or loopback address; webhooks go to public ones.", URL_FIELD)
    address = addresses[0]
    netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    parts = urlsplit(url.strip())
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
