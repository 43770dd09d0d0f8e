"""The account's lifecycle by mail through nginx, with a real SMTP server (`mail_sink`):
register and verify from the mail, forget the password and reset it (every session ends at
users and orgs within 5 s), change the email (users' profile and lookups follow), and an
invitation mailed by orgs whose token accepts it."""

from __future__ import annotations

import time
from typing import Any

import httpx

from platform_testing import assert_problem
from platform_testing.smtp import MailSink, mailed_token

REVOCATION_DEADLINE_SECONDS = 5.0


def mail_token(sink: MailSink, to: str, subject: str) -> str:
    def matches(message: Any) -> bool:
        return to in str(message["To"]) and subject in str(message["Subject"]).lower()

    return mailed_token(sink.wait_for(matches, 15))


def eventually(check: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.1)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_mail_journey(api: httpx.Client, accounts: Any, mail_sink: MailSink) -> None:
    carol = accounts.register("carol")
    token = mail_token(mail_sink, carol.email, "verify")
    assert api.post("/api/v1/auth/email/verify", json={"token": token}).status_code == 204
    assert_problem(
        api.post("/api/v1/auth/email/verify", json={"token": token}), 410, "token_expired"
    )
    accounts.login(carol)
    eventually(lambda: api.get("/api/v1/users/me", headers=carol.auth).json().get("email_verified"))
    first = carol.access_token
    second = accounts.login(carol).access_token
    assert api.get("/api/v1/orgs", headers=bearer(first)).status_code == 200

    # Forgotten password: the same answer for an unknown address.
    known = api.post("/api/v1/auth/password/forgot", json={"email": carol.email})
    unknown = api.post("/api/v1/auth/password/forgot", json={"email": "nobody@e2e-platform.io"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    token = mail_token(mail_sink, carol.email, "reset")
    new_password = carol.password + "-reset"
    reset = api.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": new_password}
    )
    assert reset.status_code == 204, reset.text
    ended_at = time.monotonic()
    pending = {(p, t) for p in ("/api/v1/users/me", "/api/v1/orgs") for t in (first, second)}
    while pending and time.monotonic() - ended_at < REVOCATION_DEADLINE_SECONDS + 1:
        for path, access in list(pending):
            if api.get(path, headers=bearer(access)).status_code == 401:
                pending.discard((path, access))
        if pending:
            time.sleep(0.1)
    elapsed = time.monotonic() - ended_at
    assert not pending and elapsed < REVOCATION_DEADLINE_SECONDS, (pending, elapsed)
    carol.password = new_password
    accounts.login(carol)

    # Email change: confirmed from the new address; login, profile and lookups follow.
    old_email, new_email = carol.email, "moved-" + carol.email
    change = api.post(
        "/api/v1/auth/email/change",
        json={"new_email": new_email, "current_password": carol.password},
        headers=carol.auth,
    )
    assert change.status_code == 202, change.text
    mail_sink.wait_for(  # the notice to the old address
        lambda m: old_email in str(m["To"]) and "being changed" in str(m["Subject"]), 15
    )
    token = mail_token(mail_sink, new_email, "confirm")
    assert api.post("/api/v1/auth/email/change/confirm", json={"token": token}).status_code == 204
    old_login = api.post(
        "/api/v1/auth/login", json={"email": old_email, "password": carol.password}
    )
    assert_problem(old_login, 401, "invalid_credentials")
    carol.email = new_email
    accounts.login(carol)
    eventually(lambda: api.get("/api/v1/users/me", headers=carol.auth).json()["email"] == new_email)

    # orgs mails the invitee; the mailed token accepts the invitation.
    slug = f"mail-{int(time.time() * 1000) % 10**9}"
    created = api.post("/api/v1/orgs", json={"name": "Mail Co", "slug": slug}, headers=carol.auth)
    assert created.status_code == 201, created.text
    dave = accounts.create("dave")
    invited = api.post(
        f"/api/v1/orgs/{slug}/invitations",
        json={"email": dave.email, "role": "member"},
        headers=carol.auth,
    )
    assert invited.status_code == 201, invited.text
    token = mail_token(mail_sink, dave.email, "invited")
    accepted = api.post(f"/api/v1/orgs/invitations/{token}/accept", headers=dave.auth)
    assert accepted.status_code == 201, accepted.text
    members = api.get(f"/api/v1/orgs/{slug}/members", headers=carol.auth).json()["items"]
    emails = {m["email"] for m in members}
    assert {new_email, dave.email} <= emails
