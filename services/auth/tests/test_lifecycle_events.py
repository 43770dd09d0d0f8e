"""The account-lifecycle flows by mail and the deletion are security events too: each is
recorded in auth's `events` table in the transaction of the change (the auth audit log)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from auth.models import EventRecord
from platform_common.state import platform_state
from platform_testing.smtp import MailSink, mailed_token

if TYPE_CHECKING:
    from conftest import AuthApi

AUTH = "/api/v1/auth"
PASSWORD = "a perfectly fine passphrase"
NEW_PASSWORD = "another perfectly fine passphrase"


async def recorded(app: FastAPI, user_id: str) -> list[tuple[str, dict[str, Any]]]:
    async with platform_state(app).sessionmaker() as db:
        rows = await db.scalars(
            select(EventRecord)
            .where(EventRecord.target_id == user_id)
            .order_by(EventRecord.occurred_at, EventRecord.id)
        )
        return [(row.type, row.data) for row in rows]


async def test_verification_reset_email_change_and_deletion_are_recorded(
    client: httpx.AsyncClient, api: AuthApi, app: FastAPI, mail_sink: MailSink
) -> None:
    user = await api.register()
    token = mailed_token(await mail_sink.wait_for_mail(user["email"], "verify"))
    assert (await client.post(f"{AUTH}/email/verify", json={"token": token})).status_code == 204

    await client.post(f"{AUTH}/password/forgot", json={"email": user["email"]})
    token = mailed_token(await mail_sink.wait_for_mail(user["email"], "reset"))
    reset = await client.post(
        f"{AUTH}/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert reset.status_code == 204, reset.text

    signed = await api.login(user["email"], NEW_PASSWORD)
    new_email = f"moved-{uuid.uuid4().hex[:10]}@example.com"
    change = await client.post(
        f"{AUTH}/email/change",
        json={"new_email": new_email, "current_password": NEW_PASSWORD},
        headers=signed.headers,
    )
    assert change.status_code == 202, change.text
    token = mailed_token(await mail_sink.wait_for_mail(new_email, "confirm"))
    confirm = await client.post(f"{AUTH}/email/change/confirm", json={"token": token})
    assert confirm.status_code == 204, confirm.text

    signed = await api.login(new_email, NEW_PASSWORD)
    deleted = await client.request(
        "DELETE", f"{AUTH}/me", json={"current_password": NEW_PASSWORD}, headers=signed.headers
    )
    assert deleted.status_code == 204, deleted.text

    events = await recorded(app, user["id"])
    types = [t for t, _ in events]
    for expected in ("user.verified", "password.changed", "email.changed", "user.deleted"):
        assert expected in types, types
    assert types.index("user.verified") < types.index("password.changed")
    assert types.index("email.changed") < types.index("user.deleted")
    data = dict(events)
    assert data["password.changed"]["reason"] == "reset"
    assert data["email.changed"]["old_email"] == user["email"]
    assert data["email.changed"]["new_email"] == new_email
