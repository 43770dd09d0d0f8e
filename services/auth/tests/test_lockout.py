"""Failed logins slow guessing without letting an attacker keep the owner out (OWASP device
cookies, auth.throttle): from the attacker's side and from the owner's."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from platform_testing import assert_problem

URL = "/api/v1/auth/login"
PASSWORD = "a perfectly fine passphrase"
WRONG = "wrong guess 1"
# Addresses come from X-Forwarded-For through a trusted proxy, so one test can play many
# clients; the per-address limit is out of the way.
SETTINGS = {"trusted_proxies": "127.0.0.0/8", "login_max_attempts_per_ip": 100_000}


async def register(client: httpx.AsyncClient) -> str:
    email = f"owner-{uuid.uuid4().hex[:10]}@example.com"
    r = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Owner"}
    )
    assert r.status_code == 201, r.text
    return email


async def attempt(
    client: httpx.AsyncClient,
    email: str,
    *,
    address: str,
    password: str = WRONG,
    device_token: str | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"email": email, "password": password}
    if device_token:
        body["device_token"] = device_token
    return await client.post(URL, json=body, headers={"X-Forwarded-For": address})


async def test_five_failures_from_five_addresses_delay_unknown_clients_not_lock_them(
    started: Any,
) -> None:
    async with started(**SETTINGS, login_max_delay_seconds=1) as client:
        email = await register(client)
        for i in range(5):
            r = await attempt(client, email, address=f"203.0.113.{i + 1}")
            assert r.status_code == 401
        # A sixth client, unknown to the account: it waits, even with the right password.
        r = await attempt(client, email, address="203.0.113.99", password=PASSWORD)
        body = assert_problem(r, 429, "rate_limited")
        assert r.headers["retry-after"] == "1"
        assert "account" in body["detail"]
        # No hard lock: once the delay has passed, the next attempt is heard.
        await asyncio.sleep(1.05)
        r = await attempt(client, email, address="203.0.113.99", password=PASSWORD)
        assert r.status_code == 200, r.text


async def test_delays_grow_and_parallel_attempts_get_one_guess(started: Any) -> None:
    async with started(**SETTINGS, login_max_delay_seconds=4) as client:
        email = await register(client)
        for i in range(5):
            assert (await attempt(client, email, address=f"198.51.100.{i}")).status_code == 401
        retry_afters = []
        for _ in range(4):
            r = await attempt(client, email, address="198.51.100.200")
            if r.status_code == 429:
                retry_afters.append(int(r.headers["retry-after"]))
                await asyncio.sleep(int(r.headers["retry-after"]) + 0.05)
                r = await attempt(client, email, address="198.51.100.200")
            assert r.status_code == 401
        assert retry_afters == [1, 2, 4, 4]  # 1 s, 2 s, 4 s, ... capped at the maximum
        # Twenty guesses at once when the delay ends: one is heard, the rest wait.
        await asyncio.sleep(4.05)
        answers = await asyncio.gather(
            *(attempt(client, email, address=f"192.0.2.{i}") for i in range(20))
        )
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [401] + [429] * 19, statuses


async def test_the_owners_device_and_address_get_in_while_an_attacker_hammers(
    started: Any,
) -> None:
    async with started(**SETTINGS, login_max_delay_seconds=120) as client:
        email = await register(client)
        first = await attempt(client, email, address="203.0.113.7", password=PASSWORD)
        assert first.status_code == 200
        device_token = first.json()["device_token"]
        assert len(device_token) >= 32

        # The attacker, from addresses of its own, without the password.
        for i in range(30):
            r = await attempt(client, email, address=f"198.51.100.{i}")
            assert r.status_code in (401, 429)
        assert (await attempt(client, email, address="198.51.100.250")).status_code == 429

        # The owner's device, from an address the account has never used: straight in.
        r = await attempt(
            client, email, address="192.0.2.77", password=PASSWORD, device_token=device_token
        )
        assert r.status_code == 200, r.text
        assert r.json()["device_token"] == device_token
        # The owner's known address, without the device token: straight in too.
        r = await attempt(client, email, address="203.0.113.7", password=PASSWORD)
        assert r.status_code == 200, r.text
        # The attacker is still slowed: its pool was not emptied by the owner's logins.
        assert (await attempt(client, email, address="198.51.100.251")).status_code == 429


async def test_a_device_token_of_another_account_earns_no_trust(started: Any) -> None:
    async with started(**SETTINGS, login_max_delay_seconds=120) as client:
        victim, attacker = await register(client), await register(client)
        own = await attempt(client, attacker, address="198.51.100.1", password=PASSWORD)
        attackers_token = own.json()["device_token"]
        statuses = [
            (
                await attempt(
                    client, victim, address=f"198.51.100.{i + 2}", device_token=attackers_token
                )
            ).status_code
            for i in range(7)
        ]
        assert statuses == [401] * 5 + [429] * 2
        # A forged or unknown token is no better.
        r = await attempt(client, victim, address="198.51.100.99", device_token="x" * 43)
        assert r.status_code == 429


async def test_a_trusted_device_is_slowed_by_its_own_failures_only(started: Any) -> None:
    async with started(**SETTINGS, login_max_delay_seconds=120) as client:
        email = await register(client)
        token = (await attempt(client, email, address="203.0.113.1", password=PASSWORD)).json()[
            "device_token"
        ]
        for _ in range(5):
            r = await attempt(client, email, address="192.0.2.1", device_token=token)
            assert r.status_code == 401
        r = await attempt(client, email, address="192.0.2.1", device_token=token)
        assert r.status_code == 429
        # Its failures did not touch the other pools: the known address still gets in.
        r = await attempt(client, email, address="203.0.113.1", password=PASSWORD)
        assert r.status_code == 200


async def test_the_token_endpoint_takes_and_returns_the_device_token(started: Any) -> None:
    async with started(**SETTINGS) as client:
        email = await register(client)
        form = {"grant_type": "password", "username": email, "password": PASSWORD}
        first = await client.post("/api/v1/auth/token", data=form)
        assert first.status_code == 200, first.text
        token = first.json()["device_token"]
        again = await client.post("/api/v1/auth/token", data={**form, "device_token": token})
        assert again.json()["device_token"] == token
        refreshed = await client.post(
            "/api/v1/auth/token",
            data={"grant_type": "refresh_token", "refresh_token": again.json()["refresh_token"]},
        )
        assert refreshed.status_code == 200
        assert "device_token" not in refreshed.json()
