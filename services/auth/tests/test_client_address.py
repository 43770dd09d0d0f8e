"""Which address auth records for a login (and counts attempts against)."""

from __future__ import annotations

import uuid
from typing import Any

from jose import jwt
from sqlalchemy import select

from auth.models import UserSession
from platform_common.state import platform_state

# Per-address throttling is not what these tests are about: every login here comes from
# 127.0.0.1, as do other suites' within the same minute.
ROOMY = {"login_max_attempts_per_ip": 100_000}


async def recorded_address(client: Any, access_token: str) -> str | None:
    sid = jwt.get_unverified_claims(access_token)["sid"]
    async with platform_state(client.app).sessionmaker() as db:
        return await db.scalar(
            select(UserSession.client_address).where(UserSession.id == uuid.UUID(sid))
        )


async def login_from(client: Any, forwarded_for: str) -> str | None:
    email = f"addr-{uuid.uuid4().hex[:10]}@example.com"
    body = {"email": email, "password": "a perfectly fine passphrase"}
    registered = await client.post("/api/v1/auth/register", json={**body, "name": "Addr"})
    assert registered.status_code == 201, registered.text
    response = await client.post(
        "/api/v1/auth/login", json=body, headers={"X-Forwarded-For": forwarded_for}
    )
    assert response.status_code == 200, response.text
    return await recorded_address(client, response.json()["access_token"])


async def test_a_client_sent_forwarded_for_is_ignored_by_default(started: Any) -> None:
    async with started(**ROOMY) as client:
        assert await login_from(client, "203.0.113.9") == "127.0.0.1"


async def test_through_a_trusted_proxy_the_right_most_untrusted_hop_counts(started: Any) -> None:
    async with started(trusted_proxies="127.0.0.0/8", **ROOMY) as client:
        assert await login_from(client, "198.51.100.1, 203.0.113.9") == "203.0.113.9"


async def test_an_overlong_forged_entry_is_not_an_address(started: Any) -> None:
    # It used to reach a 64-character column and answer 500.
    async with started(trusted_proxies="127.0.0.0/8", **ROOMY) as client:
        assert await login_from(client, "x" * 70) == "127.0.0.1"
