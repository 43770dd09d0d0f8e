"""The invitee is mailed when an invitation is created (a real SMTP server, aiosmtpd), and
the link's `token` accepts the invitation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from orgs.models import MailOutbox
from platform_testing.smtp import MailSink, html_part, mailed_token, text_part

if TYPE_CHECKING:
    from conftest import ClientFactory, People


async def test_the_invitation_mail_carries_a_token_that_accepts_it(
    make_client: ClientFactory, people: People, engine: AsyncEngine
) -> None:
    owner = people.user("owner")
    invitee = people.user("invitee", email="Invited.Person@Example.com")
    with MailSink() as sink:
        async with make_client(
            smtp_url=sink.url, mail_link_base_url="https://id.example.test"
        ) as client:
            org = await client.post(
                "/api/v1/orgs",
                json={"name": "Acme & <Sons>", "slug": "acme-mail"},
                headers=owner.headers,
            )
            assert org.status_code == 201, org.text
            invited = await client.post(
                "/api/v1/orgs/acme-mail/invitations",
                json={"email": invitee.email, "role": "admin"},
                headers=owner.headers,
            )
            assert invited.status_code == 201, invited.text

            mail = await sink.wait_for_mail("invited.person@example.com", "invited")
            assert "Acme & <Sons>" in text_part(mail)
            assert "Acme &amp; &lt;Sons&gt;" in html_part(mail)
            assert "https://id.example.test/accept-invitation?token=" in text_part(mail)
            token = mailed_token(mail)
            assert token == invited.json()["token"]

            accepted = await client.post(
                f"/api/v1/orgs/invitations/{token}/accept", headers=invitee.headers
            )
            assert accepted.status_code == 201, accepted.text
            assert accepted.json()["role"] == "admin"

    async with engine.connect() as conn:
        row = (await conn.execute(select(MailOutbox.sent_at, MailOutbox.text_body))).one()
        assert row.sent_at is not None and row.text_body is None


async def test_the_invitation_is_created_while_the_smtp_server_is_down(
    make_client: ClientFactory, people: People, engine: AsyncEngine
) -> None:
    owner = people.user("owner")
    sink = MailSink()  # not listening
    async with make_client(smtp_url=sink.url) as client:
        await client.post(
            "/api/v1/orgs", json={"name": "Down", "slug": "down-mail"}, headers=owner.headers
        )
        invited = await client.post(
            "/api/v1/orgs/down-mail/invitations",
            json={"email": "someone@example.com", "role": "member"},
            headers=owner.headers,
        )
        assert invited.status_code == 201, invited.text
    async with engine.connect() as conn:
        row = (await conn.execute(select(MailOutbox.sent_at, MailOutbox.to_address))).one()
        assert row.sent_at is None and row.to_address == "someone@example.com"
