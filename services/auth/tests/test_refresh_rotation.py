"""Refresh-token rotation as stored: an ordinary rotation is one statement
(`RefreshTokenRepository.rotate`); every other token goes through the step-by-step checks.
What each leaves in the database, the answers, the reuse metric, event and revocation."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import FastAPI
from jose import jwt
from sqlalchemy import select, update

from auth.models import EventRecord, RefreshToken, User, UserSession
from platform_common.clock import utcnow
from platform_common.opaque_tokens import hash_token
from platform_common.state import platform_state
from platform_testing import assert_problem

if TYPE_CHECKING:
    from conftest import AuthApi


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})


async def token_row(app: FastAPI, refresh_token: str) -> RefreshToken:
    async with platform_state(app).sessionmaker() as db:
        row = await db.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == hash_token(refresh_token))
        )
    assert row is not None
    return row


async def session_row(app: FastAPI, session_id: uuid.UUID) -> UserSession:
    async with platform_state(app).sessionmaker() as db:
        row = await db.get(UserSession, session_id)
    assert row is not None
    return row


async def execute(app: FastAPI, statement: Any) -> None:
    async with platform_state(app).sessionmaker() as db, db.begin():
        await db.execute(statement)


async def reuse_metric(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    found = re.search(r"^auth_refresh_token_reuse_total (\S+)$", text, re.MULTILINE)
    assert found, text
    return float(found.group(1))


async def test_rotation_retires_the_token_and_stores_its_successor(
    client: httpx.AsyncClient, api: AuthApi, app: FastAPI
) -> None:
    user = await api.signed_in()
    before = await token_row(app, user.refresh_token)
    session_before = await session_row(app, before.session_id)
    response = await refresh(client, user.refresh_token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    retired = await token_row(app, user.refresh_token)
    successor = await token_row(app, body["refresh_token"])
    assert retired.rotated_at is not None
    assert successor.rotated_at is None and successor.id != retired.id
    assert successor.session_id == retired.session_id
    # The successor lives as long as the session, however often it is rotated.
    assert successor.expires_at == session_before.expires_at
    assert successor.created_at == retired.rotated_at
    session_after = await session_row(app, retired.session_id)
    assert session_after.last_used_at == retired.rotated_at
    assert session_after.last_used_at > session_before.last_used_at
    assert session_after.ended_at is None
    claims = jwt.get_unverified_claims(body["access_token"])
    assert claims["sub"] == str(user.id) and claims["sid"] == str(retired.session_id)
    assert (claims["email"], claims["name"], claims["role"]) == (user.email, user.name, "user")
    assert claims["email_verified"] is False
    assert claims["exp"] - claims["iat"] == 900
    # The chain goes on.
    again = await refresh(client, body["refresh_token"])
    assert again.status_code == 200, again.text


async def test_the_access_token_says_what_the_account_is_now(
    client: httpx.AsyncClient, api: AuthApi, app: FastAPI
) -> None:
    user = await api.signed_in()
    await execute(
        app,
        update(User)
        .where(User.id == user.id)
        .values(name="Renamed", role="admin", email_verified=True),
    )
    body = (await refresh(client, user.refresh_token)).json()
    claims = jwt.get_unverified_claims(body["access_token"])
    assert (claims["name"], claims["role"], claims["email_verified"]) == ("Renamed", "admin", True)


async def test_a_disabled_account_cannot_refresh_and_keeps_its_token_unused(
    client: httpx.AsyncClient, api: AuthApi, app: FastAPI
) -> None:
    # Disabled without its sessions being ended (as by hand in the database): refused, and
    # nothing is changed, so the token works again once the account is enabled.
    user = await api.signed_in()
    await execute(app, update(User).where(User.id == user.id).values(is_active=False))
    refused = await refresh(client, user.refresh_token)
    assert_problem(refused, 401, "invalid_refresh_token")
    assert refused.json()["detail"] == "The account is not active."
    assert (await token_row(app, user.refresh_token)).rotated_at is None
    await execute(app, update(User).where(User.id == user.id).values(is_active=True))
    assert (await refresh(client, user.refresh_token)).status_code == 200


async def test_expired_tokens_and_ended_sessions_are_refused_unchanged(
    client: httpx.AsyncClient, api: AuthApi, app: FastAPI
) -> None:
    expired, ended = await api.signed_in(), await api.signed_in()
    past = utcnow() - timedelta(seconds=1)
    await execute(
        app,
        update(RefreshToken)
        .where(RefreshToken.token_hash == hash_token(expired.refresh_token))
        .values(expires_at=past),
    )
    ended_session = (await token_row(app, ended.refresh_token)).session_id
    await execute(
        app,
        update(UserSession).where(UserSession.id == ended_session).values(ended_at=past),
    )
    for caller in (expired, ended):
        response = await refresh(client, caller.refresh_token)
        assert_problem(response, 401, "invalid_refresh_token")
        assert response.json()["detail"] == (
            "The refresh token has expired or its session has ended."
        )
        assert (await token_row(app, caller.refresh_token)).rotated_at is None
    unknown = await refresh(client, "made-up")
    assert unknown.json()["detail"] == "The refresh token is not valid."


async def test_reuse_is_counted_recorded_and_revoked(
    client: httpx.AsyncClient, api: AuthApi, app: FastAPI
) -> None:
    user = await api.signed_in()
    session_id = (await token_row(app, user.refresh_token)).session_id
    counted = await reuse_metric(client)
    assert (await refresh(client, user.refresh_token)).status_code == 200
    reuse = await refresh(client, user.refresh_token)
    assert_problem(reuse, 401, "invalid_refresh_token")
    assert reuse.json()["detail"] == (
        "The refresh token was already used; the session has been ended."
    )
    assert await reuse_metric(client) == counted + 1
    ended = await session_row(app, session_id)
    assert ended.ended_at is not None and ended.end_reason == "refresh_reuse"
    assert await platform_state(app).revocations.is_revoked(str(session_id))
    async with platform_state(app).sessionmaker() as db:
        events = (
            await db.scalars(
                select(EventRecord).where(
                    EventRecord.type == "session.ended", EventRecord.target_id == str(session_id)
                )
            )
        ).all()
    assert [e.data for e in events] == [{"user_id": str(user.id), "reason": "refresh_reuse"}]


async def test_the_same_token_twice_at_once_without_grace(
    client: httpx.AsyncClient, api: AuthApi, app: FastAPI
) -> None:
    # One of the two rotates it; the other finds it used (after waiting for the row, or
    # after the commit), which is reuse: the session ends, the winner's new token with it.
    user = await api.signed_in()
    both = await asyncio.gather(
        refresh(client, user.refresh_token), refresh(client, user.refresh_token)
    )
    assert sorted(r.status_code for r in both) == [200, 401], [r.text for r in both]
    winner = next(r for r in both if r.status_code == 200).json()
    assert_problem(await refresh(client, winner["refresh_token"]), 401, "invalid_refresh_token")
    session_id = (await token_row(app, user.refresh_token)).session_id
    assert (await session_row(app, session_id)).end_reason == "refresh_reuse"


async def test_rotation_in_the_callers_transaction(api: AuthApi, app: FastAPI) -> None:
    # A caller that has already begun a transaction gets the rotation in it: rolled back
    # with it, the token is unused again.
    user = await api.signed_in()
    sessions = app.state.session_service
    async with platform_state(app).sessionmaker() as db:
        await db.begin()
        await db.execute(select(User.id).where(User.id == user.id))
        pair = await sessions.refresh(db, user.refresh_token)
        inside = await db.scalar(
            select(RefreshToken.rotated_at).where(
                RefreshToken.token_hash == hash_token(user.refresh_token)
            )
        )
        assert inside is not None
        assert await db.scalar(
            select(RefreshToken.id).where(RefreshToken.token_hash == hash_token(pair.refresh_token))
        )
        await db.rollback()
    assert (await token_row(app, user.refresh_token)).rotated_at is None
