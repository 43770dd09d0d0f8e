"""The client's address, as the contract defines it (throttling and audit use it).

`X-Forwarded-For` is believed only as far as the hops that added to it are trusted: when the
direct peer is in `*_TRUSTED_PROXIES`, the header is read from the right, skipping trusted
proxies, and the first address that is not one of them is the client. Entries further left
were written by that client and prove nothing. Anything that is not an IP address ends the
walk, so a forged or overlong entry can never become "the address". With no trusted proxies
(the default) the header is ignored and the peer is the client.

The servers (uvicorn, gunicorn's uvicorn worker) are run with their own proxy-header handling
off, so the peer seen here is the real socket peer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse(value: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _trusted(address: IPAddress, proxies: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in proxies)


def client_address(
    peer: str | None, forwarded_for: list[str], trusted_proxies: Sequence[IPNetwork]
) -> str | None:
    """`peer`: the socket peer; `forwarded_for`: every X-Forwarded-For header, in order."""
    current = _parse(peer) if peer else None
    if current is None:
        return None
    if not trusted_proxies:
        return str(current)
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    while _trusted(current, trusted_proxies) and hops:
        previous = _parse(hops.pop())
        if previous is None:
            break
        current = previous
    return str(current)


async def get_client_address(request: Request) -> str | None:
    from platform_common.state import platform_state

    return client_address(
        request.client.host if request.client else None,
        request.headers.getlist("x-forwarded-for"),
        platform_state(request.app).settings.trusted_proxies,
    )


ClientAddressDep = Annotated[str | None, Depends(get_client_address)]
