"""Invitations: issuing, listing, revoking and accepting, single use, expiry."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from orgs.models import Invitation
from platform_testing import assert_problem

if TYPE_CHECKING:
    from conftest import ClientFactory, OrgsApi, OrgWorld, People


def invitations(slug: str, invitation_id: str | None = None) -> str:
    path = f"/api/v1/orgs/{slug}/invitations"
    return f"{path}/{invitation_id}" if invitation_id else path


def accept(token: str) -> str:
    return f"/api/v1/orgs/invitations/{token}/accept"


async def test_issue_and_accept(
    client: httpx.AsyncClient, world: OrgWorld, people: People, api: OrgsApi
) -> None:
    invitee = people.user("invitee", email="Invitee.Person@Example.com")
    response = await client.post(
        invitations(world.slug),
        json={"email": "invitee.person@example.COM", "role": "admin"},
        headers=world.admin.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert {"id", "email", "role", "expires_at", "token"} <= body.keys()
    assert body["role"] == "admin"
    assert body["email"] == "invitee.person@example.com"
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)

    accepted = await client.post(accept(body["token"]), headers=invitee.headers)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["user_id"] == str(invitee.id)
    assert accepted.json()["role"] == "admin"
    assert (await api.roles(world.slug, world.owner))[invitee.id] == "admin"

    again = await client.post(accept(body["token"]), headers=invitee.headers)
    assert_problem(again, 410, "invitation_used")


async def test_token_is_stored_only_as_a_hash(
    client: httpx.AsyncClient, world: OrgWorld, engine: AsyncEngine
) -> None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(Invitation.token_hash).where(Invitation.id == uuid.UUID(world.invitation_id))
            )
        ).one()
    assert row.token_hash == hashlib.sha256(world.invitation_token.encode()).hexdigest()
    assert world.invitation_token not in row.token_hash
    assert len(world.invitation_token) >= 43


async def test_list_pending_without_tokens(
    client: httpx.AsyncClient, world: OrgWorld, api: OrgsApi, engine: AsyncEngine
) -> None:
    revoked = await api.invite(world.slug, world.owner, "revoked@example.com")
    expired = await api.invite(world.slug, world.owner, "expired@example.com")
    pending = await api.invite(world.slug, world.admin, "pending@example.com", role="viewer")
    await client.delete(invitations(world.slug, revoked["id"]), headers=world.owner.headers)
    await expire(engine, expired["id"])

    response = await client.get(invitations(world.slug), headers=world.admin.headers)
    assert response.status_code == 200
    page = response.json()
    assert {item["id"] for item in page["items"]} == {world.invitation_id, pending["id"]}
    assert page["total"] == 2
    assert all("token" not in item for item in page["items"])


async def expire(engine: AsyncEngine, invitation_id: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(Invitation)
            .where(Invitation.id == uuid.UUID(invitation_id))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


async def test_expired_is_410(
    client: httpx.AsyncClient, world: OrgWorld, engine: AsyncEngine
) -> None:
    await expire(engine, world.invitation_id)
    response = await client.post(accept(world.invitation_token), headers=world.outsider.headers)
    assert_problem(response, 410, "invitation_expired")


async def test_revoked_is_410(client: httpx.AsyncClient, world: OrgWorld) -> None:
    revoke = await client.delete(
        invitations(world.slug, world.invitation_id), headers=world.admin.headers
    )
    assert revoke.status_code == 204
    again = await client.delete(
        invitations(world.slug, world.invitation_id), headers=world.admin.headers
    )
    assert again.status_code == 204
    response = await client.post(accept(world.invitation_token), headers=world.outsider.headers)
    assert_problem(response, 410, "invitation_revoked")


async def test_revoking_an_accepted_invitation_is_409(
    client: httpx.AsyncClient, world: OrgWorld
) -> None:
    accepted = await client.post(accept(world.invitation_token), headers=world.outsider.headers)
    assert accepted.status_code == 201
    response = await client.delete(
        invitations(world.slug, world.invitation_id), headers=world.owner.headers
    )
    assert_problem(response, 409, "invitation_accepted")


async def test_revoke_unknown_or_other_orgs_invitation_is_404(
    client: httpx.AsyncClient, world: OrgWorld, api: OrgsApi, people: People
) -> None:
    other_owner = people.user()
    other = await api.create_org(other_owner)
    response = await client.delete(
        invitations(other["slug"], world.invitation_id), headers=other_owner.headers
    )
    assert_problem(response, 404, "invitation_not_found")
    response = await client.delete(
        invitations(world.slug, str(uuid.uuid4())), headers=world.owner.headers
    )
    assert_problem(response, 404, "invitation_not_found")
    # The other org's owner did not revoke ours.
    accepted = await client.post(accept(world.invitation_token), headers=world.outsider.headers)
    assert accepted.status_code == 201


async def test_email_mismatch_is_403_and_keeps_the_invitation(
    client: httpx.AsyncClient, world: OrgWorld, people: People
) -> None:
    response = await client.post(accept(world.invitation_token), headers=world.newcomer.headers)
    assert_problem(response, 403, "email_mismatch")
    no_email = people.factory.mint(sub=str(uuid.uuid4()), role="user")
    response = await client.post(
        accept(world.invitation_token), headers={"Authorization": f"Bearer {no_email}"}
    )
    assert_problem(response, 403, "email_mismatch")
    accepted = await client.post(accept(world.invitation_token), headers=world.outsider.headers)
    assert accepted.status_code == 201


async def test_unknown_token_is_404(client: httpx.AsyncClient, world: OrgWorld) -> None:
    response = await client.post(accept("no-such-token"), headers=world.outsider.headers)
    assert_problem(response, 404, "invitation_not_found")


async def test_already_a_member_is_409_and_the_invitation_stays_open(
    client: httpx.AsyncClient, world: OrgWorld, api: OrgsApi
) -> None:
    invitation = await api.invite(world.slug, world.owner, world.member.email, role="admin")
    response = await client.post(accept(invitation["token"]), headers=world.member.headers)
    assert_problem(response, 409, "already_member")
    pending = await client.get(invitations(world.slug), headers=world.owner.headers)
    assert invitation["id"] in {item["id"] for item in pending.json()["items"]}
    assert (await api.roles(world.slug, world.owner))[world.member.id] == "member"


async def test_accept_route_is_not_taken_for_an_org_named_invitations(
    client: httpx.AsyncClient, people: People, api: OrgsApi
) -> None:
    owner, invitee = people.user(), people.user("invitee")
    org = await api.create_org(owner, slug="invitations")
    invitation = await api.invite(org["slug"], owner, invitee.email)
    response = await client.post(accept(invitation["token"]), headers=invitee.headers)
    assert response.status_code == 201, response.text
    listed = await client.get(invitations("invitations"), headers=owner.headers)
    assert listed.status_code == 200


async def test_ttl_comes_from_settings(make_client: ClientFactory, people: People) -> None:
    async with make_client(invitation_ttl_days=1) as client:
        owner = people.user()
        created = await client.post(
            "/api/v1/orgs", json={"name": "A", "slug": "ttl-org"}, headers=owner.headers
        )
        assert created.status_code == 201
        response = await client.post(
            invitations("ttl-org"), json={"email": "a@example.com"}, headers=owner.headers
        )
        expires = datetime.fromisoformat(response.json()["expires_at"])
        assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(days=1)


async def test_a_viewer_who_accepted_can_read_the_org(
    client: httpx.AsyncClient, world: OrgWorld, people: People, api: OrgsApi
) -> None:
    # Reading the org is viewer+: a viewer used to get 403 for the org it had just joined.
    invitee = people.user("viewer-invitee")
    invitation = await api.invite(world.slug, world.admin, invitee.email, role="viewer")
    accepted = await client.post(accept(invitation["token"]), headers=invitee.headers)
    assert accepted.status_code == 201, accepted.text
    org = await client.get(f"/api/v1/orgs/{world.slug}", headers=invitee.headers)
    assert org.status_code == 200, org.text
    assert org.json()["role"] == "viewer"
