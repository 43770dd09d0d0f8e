"""The account's lifecycle by mail, with a real SMTP server (aiosmtpd, `mail_sink`):
verification, a forgotten password, email change, the new-sign-in notice, and the outbox
that keeps mail while the SMTP server is down."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import FastAPI
from jose import jwt
from sqlalchemy import select, update

from auth.models import AccountToken, MailOutbox, OutboxEvent
from platform_common.clock import utcnow
from platform_common.opaque_tokens import hash_token
from platform_common.state import platform_state
from platform_testing import assert_problem, bearer
from platform_testing.smtp import MailSink, html_part, mailed_token, text_part

if TYPE_CHECKING:
    from conftest import AuthApi

AUTH = "/api/v1/auth"
PASSWORD = "a perfectly fine passphrase"
NEW_PASSWORD = "another perfectly fine passphrase"


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


async def verification_token(mail_sink: MailSink, email: str) -> str:
    return mailed_token(await mail_sink.wait_for_mail(email, "verify"))


async def expire(app: FastAPI, token: str) -> None:
    async with platform_state(app).sessionmaker() as db, db.begin():
        await db.execute(
            update(AccountToken)
            .where(AccountToken.token_hash == hash_token(token))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


async def user_events(app: FastAPI, user_id: str) -> list[dict[str, Any]]:
    async with platform_state(app).sessionmaker() as db:
        rows = await db.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.aggregate_id == uuid.UUID(user_id))
            .order_by(OutboxEvent.created_at)
        )
        return [{"type": e.event_type, **e.payload} for e in rows]


# Verification ---------------------------------------------------------------------------


async def test_registration_mails_a_verification_link_that_verifies_once(
    client: httpx.AsyncClient, api: AuthApi, app: FastAPI, mail_sink: MailSink
) -> None:
    user = await api.register()
    assert user["email_verified"] is False
    mail = await mail_sink.wait_for_mail(user["email"], "verify")
    # Both parts, and the link: the configured base, the path, the token as `token`.
    assert "https://id.example.test/app/verify-email?token=" in text_part(mail)
    assert "https://id.example.test/app/verify-email?token=" in html_part(mail)
    assert "Test User" in text_part(mail)
    token = mailed_token(mail)
    # Only the hash is stored.
    async with platform_state(app).sessionmaker() as db:
        stored = await db.scalar(select(AccountToken).where(AccountToken.kind == "verify_email"))
        assert stored is not None and token not in (stored.token_hash, stored.new_email)

    signed = await api.login(user["email"])
    assert jwt.get_unverified_claims(signed.token)["email_verified"] is False

    assert (await client.post(f"{AUTH}/email/verify", json={"token": token})).status_code == 204
    signed = await api.login(user["email"])
    assert jwt.get_unverified_claims(signed.token)["email_verified"] is True
    # users learns it through the outbox.
    events = await user_events(app, user["id"])
    assert events[-1]["type"] == "user.updated" and events[-1]["email_verified"] is True
    # Single use.
    reused = await client.post(f"{AUTH}/email/verify", json={"token": token})
    assert_problem(reused, 410, "token_expired")
    # Verified already: 409.
    again = await client.post(f"{AUTH}/email/verify/request", headers=signed.headers)
    assert_problem(again, 409, "already_verified")


async def test_the_html_part_escapes_what_users_type(
    client: httpx.AsyncClient, api: AuthApi, mail_sink: MailSink
) -> None:
    user = await api.register(name="<script>alert(1)</script>")
    mail = await mail_sink.wait_for_mail(user["email"], "verify")
    assert "<script>" not in html_part(mail)
    assert "&lt;script&gt;" in html_part(mail)


async def test_a_verification_request_mails_a_new_link_and_retires_the_old(
    client: httpx.AsyncClient, api: AuthApi, mail_sink: MailSink
) -> None:
    user = await api.register()
    first = await verification_token(mail_sink, user["email"])
    signed = await api.login(user["email"])
    response = await client.post(f"{AUTH}/email/verify/request", headers=signed.headers)
    assert response.status_code == 202, response.text
    second = await asyncio.to_thread(
        mail_sink.wait_for,
        lambda m: user["email"] in str(m["To"]) and mailed_token(m) != first,
    )
    assert_problem(
        await client.post(f"{AUTH}/email/verify", json={"token": first}), 410, "token_expired"
    )
    token = mailed_token(second)
    assert (await client.post(f"{AUTH}/email/verify", json={"token": token})).status_code == 204


async def test_unknown_expired_and_foreign_tokens(
    client: httpx.AsyncClient, api: AuthApi, app: FastAPI, mail_sink: MailSink
) -> None:
    user = await api.register()
    token = await verification_token(mail_sink, user["email"])
    for path, body in [
        ("/email/verify", {"token": "nope"}),
        ("/email/change/confirm", {"token": "nope"}),
        ("/password/reset", {"token": "nope", "new_password": NEW_PASSWORD}),
        # A verification token is for verifying only.
        ("/password/reset", {"token": token, "new_password": NEW_PASSWORD}),
        ("/email/change/confirm", {"token": token}),
    ]:
        assert_problem(await client.post(AUTH + path, json=body), 400, "invalid_token")
    await expire(app, token)
    assert_problem(
        await client.post(f"{AUTH}/email/verify", json={"token": token}), 410, "token_expired"
    )
    # The password stayed.
    await api.login(user["email"])


async def test_login_requires_a_verified_address_when_configured(
    started: Any, api_for: Any, mail_sink: MailSink
) -> None:
    async with started(require_verified_email=True) as client:
        api = api_for(client)
        user = await api.register()
        login = {"email": user["email"], "password": PASSWORD}
        assert_problem(await client.post(f"{AUTH}/login", json=login), 403, "email_not_verified")
        token = await verification_token(mail_sink, user["email"])
        assert (await client.post(f"{AUTH}/email/verify", json={"token": token})).status_code == 204
        assert (await client.post(f"{AUTH}/login", json=login)).status_code == 200


# Forgotten password ---------------------------------------------------------------------


async def forgot(client: httpx.AsyncClient, email: str, **headers: str) -> tuple[int, Any, float]:
    started = time.monotonic()
    response = await client.post(f"{AUTH}/password/forgot", json={"email": email}, headers=headers)
    return response.status_code, response.json(), time.monotonic() - started


async def test_forgot_answers_the_same_for_unknown_addresses(
    client: httpx.AsyncClient, api: AuthApi, mail_sink: MailSink
) -> None:
    user = await api.register()
    known = await forgot(client, user["email"])
    unknown = await forgot(client, unique_email("nobody"))
    assert known[0] == unknown[0] == 202
    assert known[1] == unknown[1]
    # Padded to the same floor (AUTH_PASSWORD_FORGOT_MIN_SECONDS, 0.25 s).
    assert known[2] >= 0.25 and unknown[2] >= 0.25
    assert abs(known[2] - unknown[2]) < 0.15
    mail = await mail_sink.wait_for_mail(user["email"], "reset")
    assert "https://id.example.test/app/reset-password?token=" in text_part(mail)


async def test_forgot_is_throttled_per_address_and_per_client(started: Any, api_for: Any) -> None:
    async with started(
        password_forgot_max_per_email=2,
        password_forgot_max_per_ip=6,
        password_forgot_min_seconds=0,
        trusted_proxies=["127.0.0.0/8"],
    ) as client:
        known = (await api_for(client).register())["email"]
        for email in (known, unique_email("nobody")):
            for _ in range(2):
                assert (await forgot(client, email))[0] == 202
            # The third for the same address: 429, known or not.
            status, body, _ = await forgot(client, email)
            assert status == 429 and body["code"] == "rate_limited"
        # Per client: a seventh from one address is refused whatever the email.
        for i in range(6):
            status, _, _ = await forgot(
                client, unique_email(), **{"X-Forwarded-For": "203.0.113.9"}
            )
            assert status == 202, i
        status, _, _ = await forgot(client, unique_email(), **{"X-Forwarded-For": "203.0.113.9"})
        assert status == 429


async def test_a_reset_sets_the_password_and_ends_every_session(
    client: httpx.AsyncClient, api: AuthApi, mail_sink: MailSink
) -> None:
    user = await api.register()
    first = await api.login(user["email"])
    second = await api.login(user["email"])
    await forgot(client, user["email"])
    token = mailed_token(await mail_sink.wait_for_mail(user["email"], "reset"))

    weak = await client.post(
        f"{AUTH}/password/reset", json={"token": token, "new_password": "short"}
    )
    assert_problem(weak, 422, "weak_password")
    # The weak attempt did not use the token up.
    done = await client.post(
        f"{AUTH}/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 204, done.text

    # Every session ended: access tokens refused, refresh tokens too.
    for signed in (first, second):
        assert (await client.get(f"{AUTH}/sessions", headers=signed.headers)).status_code == 401
        refreshed = await client.post(
            f"{AUTH}/refresh", json={"refresh_token": signed.refresh_token}
        )
        assert refreshed.status_code == 401
    failed = await client.post(f"{AUTH}/login", json={"email": user["email"], "password": PASSWORD})
    assert_problem(failed, 401, "invalid_credentials")
    await api.login(user["email"], NEW_PASSWORD)

    again = await client.post(
        f"{AUTH}/password/reset", json={"token": token, "new_password": "a third fine passphrase"}
    )
    assert_problem(again, 410, "token_expired")


async def test_an_expired_reset_token_is_410(
    client: httpx.AsyncClient, api: AuthApi, app: FastAPI, mail_sink: MailSink
) -> None:
    user = await api.register()
    await forgot(client, user["email"])
    token = mailed_token(await mail_sink.wait_for_mail(user["email"], "reset"))
    await expire(app, token)
    response = await client.post(
        f"{AUTH}/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert_problem(response, 410, "token_expired")


# Email change -----------------------------------------------------------------------------


async def test_an_email_change_is_confirmed_from_the_new_address(
    client: httpx.AsyncClient, api: AuthApi, app: FastAPI, mail_sink: MailSink
) -> None:
    user = await api.register()
    signed = await api.login(user["email"])
    new_email = unique_email("moved")
    wrong = await client.post(
        f"{AUTH}/email/change",
        json={"new_email": new_email, "current_password": "not it at all"},
        headers=signed.headers,
    )
    assert_problem(wrong, 403, "invalid_credentials")
    other = await api.register()
    taken = await client.post(
        f"{AUTH}/email/change",
        json={"new_email": other["email"].upper(), "current_password": PASSWORD},
        headers=signed.headers,
    )
    assert_problem(taken, 409, "email_taken")

    response = await client.post(
        f"{AUTH}/email/change",
        json={"new_email": new_email, "current_password": PASSWORD},
        headers=signed.headers,
    )
    assert response.status_code == 202, response.text
    confirmation = await mail_sink.wait_for_mail(new_email, "confirm")
    notice = await mail_sink.wait_for_mail(user["email"], "changed")
    assert new_email in text_part(notice) and "token=" not in text_part(notice)
    token = mailed_token(confirmation)
    assert "https://id.example.test/app/confirm-email-change?token=" in text_part(confirmation)
    # Nothing changed yet.
    await api.login(user["email"])

    confirmed = await client.post(f"{AUTH}/email/change/confirm", json={"token": token})
    assert confirmed.status_code == 204, confirmed.text
    old = await client.post(f"{AUTH}/login", json={"email": user["email"], "password": PASSWORD})
    assert_problem(old, 401, "invalid_credentials")
    moved = await api.login(new_email)
    assert moved.email == new_email
    assert jwt.get_unverified_claims(moved.token)["email_verified"] is True
    events = await user_events(app, user["id"])
    assert events[-1]["type"] == "user.updated" and events[-1]["email"] == new_email
    assert_problem(
        await client.post(f"{AUTH}/email/change/confirm", json={"token": token}),
        410,
        "token_expired",
    )
    # The old address is free again.
    await api.register(email=user["email"])


async def test_an_email_taken_before_the_confirmation_is_409(
    client: httpx.AsyncClient, api: AuthApi, mail_sink: MailSink
) -> None:
    user = await api.register()
    signed = await api.login(user["email"])
    new_email = unique_email("contested")
    await client.post(
        f"{AUTH}/email/change",
        json={"new_email": new_email, "current_password": PASSWORD},
        headers=signed.headers,
    )
    token = mailed_token(await mail_sink.wait_for_mail(new_email, "confirm"))
    await api.register(email=new_email)
    assert_problem(
        await client.post(f"{AUTH}/email/change/confirm", json={"token": token}),
        409,
        "email_taken",
    )


async def test_a_pat_cannot_change_the_email(client: httpx.AsyncClient, api: AuthApi) -> None:
    signed = await api.signed_in()
    created = await client.post(
        f"{AUTH}/tokens", json={"name": "ci", "expires_in_days": 1}, headers=signed.headers
    )
    response = await client.post(
        f"{AUTH}/email/change",
        json={"new_email": unique_email(), "current_password": PASSWORD},
        headers=bearer(created.json()["token"]),
    )
    assert_problem(response, 403, "insufficient_scope")


# New sign-in notice -----------------------------------------------------------------------


async def test_a_new_sign_in_notice_for_an_unseen_address_and_agent(
    started: Any, api_for: Any, mail_sink: MailSink
) -> None:
    async with started(new_sign_in_notice=True) as client:
        api = api_for(client)
        user = await api.register()
        await api.login(user["email"], **{"User-Agent": "browser-a"})
        await api.login(user["email"], **{"User-Agent": "browser-a"})
        await api.login(user["email"], **{"User-Agent": "browser-b"})
        notice = await mail_sink.wait_for_mail(user["email"], "new sign-in")
        assert "browser-b" in text_part(notice)
        await asyncio.sleep(0.5)
        assert len([m for m in mail_sink.to(user["email"]) if "sign-in" in m["Subject"]]) == 1


async def test_no_sign_in_notice_by_default(
    client: httpx.AsyncClient, api: AuthApi, mail_sink: MailSink
) -> None:
    user = await api.register()
    await api.login(user["email"], **{"User-Agent": "browser-a"})
    await api.login(user["email"], **{"User-Agent": "browser-b"})
    await mail_sink.wait_for_mail(user["email"], "verify")
    await asyncio.sleep(0.5)
    assert all("sign-in" not in m["Subject"] for m in mail_sink.to(user["email"]))


# The outbox -------------------------------------------------------------------------------


async def test_mail_waits_while_the_smtp_server_is_down_and_goes_out_once_when_it_returns(
    started: Any, api_for: Any, app: FastAPI
) -> None:
    sink = MailSink()  # not started: nothing listens on its port
    # The session's app shares the database: its sender must not send this test's mail.
    session_sender = app.state.mail_sender
    saved, session_sender.transport = session_sender.transport, None
    try:
        await mail_waits_for_the_server(started, api_for, sink)
    finally:
        session_sender.transport = saved


async def mail_waits_for_the_server(started: Any, api_for: Any, sink: MailSink) -> None:
    async with started(smtp_url=sink.url, mail_max_backoff_seconds=1) as client:
        app = client.app  # type: ignore[attr-defined]
        api = api_for(client)
        sender = app.state.mail_sender
        with sink:  # up: the first mail goes out at once
            first = await api.register()
            await sink.wait_for_mail(first["email"], "verify")
        # The server stops: the next mail waits in the outbox, retried.
        user = await api.register()
        deadline = time.monotonic() + 10
        while sender.failed.labels(reason="unreachable")._value.get() < 2:
            assert time.monotonic() < deadline, "the sender did not try"
            await asyncio.sleep(0.1)
        async with platform_state(app).sessionmaker() as db:
            row = await db.scalar(select(MailOutbox).where(MailOutbox.to_address == user["email"]))
            assert row is not None and row.sent_at is None and row.attempts >= 2
            assert row.text_body is not None
        metrics = (await client.get("/metrics")).text
        assert 'mail_failed_total{reason="unreachable"}' in metrics
        assert "mail_queued 1.0" in metrics

        with sink:  # back: it goes out, once
            mail = await sink.wait_for_mail(user["email"], "verify", wait_seconds=15)
            assert mailed_token(mail)
            await asyncio.sleep(1.5)
            assert len(sink.to(user["email"])) == 1
            assert len(sink.to(first["email"])) == 1
        async with platform_state(app).sessionmaker() as db:
            row = await db.scalar(select(MailOutbox).where(MailOutbox.to_address == user["email"]))
            assert row is not None and row.sent_at is not None
            # The parts (they hold the token) are gone once sent.
            assert row.text_body is None and row.html_body is None
        assert sender.sent._value.get() >= 2
