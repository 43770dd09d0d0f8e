"""Server-side request forgery guard for webhook destinations.

A destination is refused when its host resolves to any address that is not globally
routable: private (10/8, 172.16/12, 192.168/16, fc00::/7), loopback, link-local (the cloud
metadata endpoint 169.254.169.254 among them), shared (100.64/10), multicast, reserved or
unspecified; an IPv4-mapped IPv6 address counts as its IPv4 address. The check is made when
the webhook is registered and again before every delivery, and the delivery connects to the
very address checked (the URL's host stays in the Host header and TLS SNI), so a name that
resolves to a public address at the check and to a private one a moment later (DNS
rebinding) cannot reach inside.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

Resolver = Callable[[str, int], Awaitable[list[str]]]


class DestinationRefused(Exception):
    """The URL may not be called; the message says why (safe to show its owner)."""


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (without blocking the event loop)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


@dataclass(frozen=True)
class Destination:
    url: str
    scheme: str
    host: str
    port: int
    address: str  # the address to connect to

    def pinned_url(self) -> str:
        """The URL with its host replaced by the checked address."""
        parts = urlsplit(self.url)
        address = f"[{self.address}]" if ":" in self.address else self.address
        netloc = f"{address}:{self.port}"
        return parts._replace(netloc=netloc).geturl()

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; DestinationRefused otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DestinationRefused(f"Not a valid URL: {exc}.") from exc
    if parts.scheme not in ("http", "https"):
        raise DestinationRefused("The URL must be http:// or https://.")
    if not parts.hostname:
        raise DestinationRefused("The URL has no host.")
    if parts.username or parts.password:
        raise DestinationRefused("The URL may not carry credentials.")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def check_destination(
    url: str, *, allow_private: bool, resolve: Resolver = system_resolve
) -> Destination:
    """Resolve the URL's host and pick the address to connect to; DestinationRefused when it
    cannot be resolved or (unless `allow_private`) when any address is not public."""
    scheme, host, port = parse_url(url)
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            addresses = await resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise DestinationRefused(f"The host {host!r} cannot be resolved.") from exc
    if not addresses:
        raise DestinationRefused(f"The host {host!r} cannot be resolved.")
    if not allow_private:
        refused = [address for address in addresses if not is_public(address)]
        if refused:
            raise DestinationRefused(
                f"The host {host!r} resolves to a private, loopback, link-local or reserved "
                f"address ({refused[0]})."
            )
    return Destination(url, scheme, host, port, addresses[0])
