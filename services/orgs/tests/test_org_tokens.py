"""Org-scoped access tokens at orgs: the authorization matrix with org tokens, the wrong org,
a lowered role, revocation when the membership changes, forged claims, and the internal
membership lookup auth issues them from.

Org tokens are minted here as auth mints them (`org_token`): a user token of the test
issuer plus `org_id`, `org_slug`, `org_role`, `permissions` (from the shared table) and
`org_checked_at` read from Redis' clock.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from platform_common.permissions import ROLE_PERMISSIONS, permissions_for
from platform_common.state import platform_state
from platform_testing import (
    TEST_AUDIENCE,
    TEST_ISSUER,
    Caller,
    TokenFactory,
    assert_problem,
    refused_within,
)

if TYPE_CHECKING:
    from conftest import OrgsApi, OrgWorld, People

ORGS = "/api/v1/orgs"
ROLES = ("owner", "admin", "member", "viewer")


async def org_token(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    who: Caller,
    org: dict[str, Any],
    role: str,
    **overrides: Any,
) -> Caller:
    """`who` holding an org-scoped token for `org` with `role`, as auth would mint it now."""
    app = client.app  # type: ignore[attr-defined]
    claims: dict[str, Any] = {
        "org_id": org["id"],
        "org_slug": org["slug"],
        "org_role": role,
        "permissions": sorted(permissions_for(role)),
        "org_checked_at": await platform_state(app).revocations.server_time_ms(),
        **overrides,
    }
    token = tokens.mint(sub=str(who.id), email=who.email, name=who.name, **claims)
    return Caller(who.id, token, who.email, who.name)


async def org_of(client: httpx.AsyncClient, world: OrgWorld) -> dict[str, Any]:
    response = await client.get(f"{ORGS}/{world.slug}", headers=world.owner.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# The matrix ---------------------------------------------------------------------------

# Each org endpoint with the status an org token of each role gets (owner, admin, member,
# viewer): the same as with the user's own token (test_authorization_matrix.py).
MATRIX: tuple[tuple[str, str, tuple[int, int, int, int]], ...] = (
    ("GET", "/{slug}", (200, 200, 200, 200)),
    ("PATCH", "/{slug}", (200, 200, 403, 403)),
    ("DELETE", "/{slug}", (204, 403, 403, 403)),
    ("GET", "/{slug}/members", (200, 200, 200, 200)),
    ("POST", "/{slug}/members", (201, 201, 403, 403)),
    ("PATCH", "/{slug}/members/{member}", (200, 200, 403, 403)),
    ("DELETE", "/{slug}/members/{viewer}", (204, 204, 403, 204)),
    ("POST", "/{slug}/invitations", (201, 201, 403, 403)),
    ("GET", "/{slug}/invitations", (200, 200, 403, 403)),
    ("DELETE", "/{slug}/invitations/{invitation}", (204, 204, 403, 403)),
)


def _request(
    method: str, template: str, world: OrgWorld, slug: str | None = None
) -> tuple[str, dict[str, Any] | None]:
    path = ORGS + template.format(
        slug=slug or world.slug,
        member=world.member.id,
        viewer=world.viewer.id,
        invitation=world.invitation_id,
    )
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("PATCH", "/{slug}"): {"name": "Renamed"},
        ("POST", "/{slug}/members"): {"user_id": str(world.newcomer.id), "role": "viewer"},
        ("PATCH", "/{slug}/members/{member}"): {"role": "viewer"},
        ("POST", "/{slug}/invitations"): {"email": "someone@example.com", "role": "viewer"},
    }
    return path, bodies.get((method, template))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("row", MATRIX, ids=lambda row: f"{row[0]} {row[1]}")
async def test_matrix_with_org_tokens(
    client: httpx.AsyncClient,
    world: OrgWorld,
    token_factory: TokenFactory,
    row: tuple[str, str, tuple[int, ...]],
    role: str,
) -> None:
    method, template, statuses = row
    org = await org_of(client, world)
    who = await org_token(client, token_factory, getattr(world, role), org, role)
    path, body = _request(method, template, world)
    response = await client.request(method, path, json=body, headers=who.headers)
    expected = statuses[ROLES.index(role)]
    assert response.status_code == expected, response.text
    if expected == 403:
        assert_problem(response, 403, "forbidden")


@pytest.mark.parametrize("row", MATRIX, ids=lambda row: f"{row[0]} {row[1]}")
async def test_a_token_for_another_org_is_refused_with_403(
    client: httpx.AsyncClient,
    world: OrgWorld,
    api: OrgsApi,
    token_factory: TokenFactory,
    row: tuple[str, str, tuple[int, ...]],
) -> None:
    # The owner owns both orgs; its token for the other one does not open this one.
    other = await api.create_org(world.owner)
    who = await org_token(client, token_factory, world.owner, other, "owner")
    method, template, _ = row
    path, body = _request(method, template, world)
    response = await client.request(method, path, json=body, headers=who.headers)
    assert_problem(response, 403, "org_mismatch")
    # ...and an org that does not exist is the same 403 (the token names its org).
    path, body = _request(method, template, world, slug="no-such-org")
    response = await client.request(method, path, json=body, headers=who.headers)
    assert_problem(response, 403, "org_mismatch")


async def test_org_endpoints_still_accept_plain_user_tokens(
    client: httpx.AsyncClient, world: OrgWorld
) -> None:
    response = await client.get(f"{ORGS}/{world.slug}/members", headers=world.viewer.headers)
    assert response.status_code == 200, response.text


async def test_the_org_is_named_by_id_or_slug_in_the_token_and_listing_still_works(
    client: httpx.AsyncClient, world: OrgWorld, token_factory: TokenFactory
) -> None:
    org = await org_of(client, world)
    who = await org_token(client, token_factory, world.member, org, "member")
    listing = await client.get(ORGS, headers=who.headers)
    assert listing.status_code == 200, listing.text
    assert [item["slug"] for item in listing.json()["items"]] == [world.slug]


# Narrowing and forged claims -----------------------------------------------------------


async def test_a_token_never_grants_more_than_the_membership(
    client: httpx.AsyncClient, world: OrgWorld, token_factory: TokenFactory
) -> None:
    """A validly signed token claiming `owner` for a viewer (say, minted before a demotion
    whose marker Redis lost) still acts as the viewer the database knows."""
    org = await org_of(client, world)
    who = await org_token(client, token_factory, world.viewer, org, "owner")
    response = await client.patch(f"{ORGS}/{world.slug}", json={"name": "X"}, headers=who.headers)
    assert_problem(response, 403, "forbidden")


async def test_an_admin_token_narrowed_to_fewer_permissions_is_held_to_them(
    client: httpx.AsyncClient, world: OrgWorld, token_factory: TokenFactory
) -> None:
    org = await org_of(client, world)
    who = await org_token(
        client, token_factory, world.admin, org, "admin", permissions=["org:read", "members:read"]
    )
    response = await client.post(
        f"{ORGS}/{world.slug}/invitations",
        json={"email": "x@example.com", "role": "viewer"},
        headers=who.headers,
    )
    assert_problem(response, 403, "forbidden")
    assert (await client.get(f"{ORGS}/{world.slug}", headers=who.headers)).status_code == 200


def _tamper(token: str, **claims: Any) -> str:
    """The token with claims changed in its payload and the original signature kept."""
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded.update(claims)
    raw = json.dumps(decoded).encode()
    return ".".join([header, base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), signature])


async def test_org_claims_added_by_hand_fail_the_signature(
    client: httpx.AsyncClient, world: OrgWorld, people: People
) -> None:
    org = await org_of(client, world)
    forged = _tamper(
        world.outsider.token,
        org_id=org["id"],
        org_slug=org["slug"],
        org_role="owner",
        permissions=sorted(ROLE_PERMISSIONS["owner"]),
        org_checked_at=int(time.time() * 1000),
    )
    response = await client.get(
        f"{ORGS}/{world.slug}", headers={"Authorization": f"Bearer {forged}"}
    )
    assert_problem(response, 401, "invalid_token")


async def test_a_role_raised_by_hand_in_an_org_token_fails_the_signature(
    client: httpx.AsyncClient, world: OrgWorld, token_factory: TokenFactory
) -> None:
    org = await org_of(client, world)
    viewer = await org_token(client, token_factory, world.viewer, org, "viewer")
    forged = _tamper(viewer.token, org_role="owner", permissions=sorted(permissions_for("owner")))
    response = await client.delete(
        f"{ORGS}/{world.slug}", headers={"Authorization": f"Bearer {forged}"}
    )
    assert_problem(response, 401, "invalid_token")


def owner_claims(org: dict[str, Any]) -> dict[str, Any]:
    """The org claims of an owner's token for `org`, checked now."""
    return {
        "org_id": org["id"],
        "org_slug": org["slug"],
        "org_role": "owner",
        "permissions": sorted(permissions_for("owner")),
        "org_checked_at": int(time.time() * 1000),
    }


async def test_org_claims_signed_by_another_key_are_refused(
    client: httpx.AsyncClient, world: OrgWorld
) -> None:
    """Someone's own key, with the kid of the issuer's: the signature fails."""
    org = await org_of(client, world)
    impostor = TokenFactory(TEST_ISSUER, TEST_AUDIENCE)
    token = impostor.mint(sub=str(world.outsider.id), **owner_claims(org))
    response = await client.get(
        f"{ORGS}/{world.slug}", headers={"Authorization": f"Bearer {token}"}
    )
    assert_problem(response, 401, "invalid_token")


@pytest.mark.parametrize(
    "claims",
    [
        {"org_role": "superuser"},
        {"permissions": ["everything"]},
        {"org_id": "not-a-uuid"},
        {"org_checked_at": "soon"},
        {"org_slug": None},
    ],
    ids=["role", "permission", "org_id", "checked_at", "slug"],
)
async def test_malformed_org_claims_are_refused(
    client: httpx.AsyncClient, world: OrgWorld, token_factory: TokenFactory, claims: dict[str, Any]
) -> None:
    org = await org_of(client, world)
    who = await org_token(client, token_factory, world.owner, org, "owner", **claims)
    response = await client.get(f"{ORGS}/{world.slug}", headers=who.headers)
    assert_problem(response, 401, "invalid_token")


async def test_incomplete_org_claims_are_refused(
    client: httpx.AsyncClient, world: OrgWorld, token_factory: TokenFactory
) -> None:
    org = await org_of(client, world)
    token = token_factory.mint(sub=str(world.owner.id), org_id=org["id"], org_role="owner")
    response = await client.get(
        f"{ORGS}/{world.slug}", headers={"Authorization": f"Bearer {token}"}
    )
    assert_problem(response, 401, "invalid_token")


# Revocation ---------------------------------------------------------------------------


async def test_a_role_change_revokes_the_members_org_tokens_within_seconds(
    client: httpx.AsyncClient, world: OrgWorld, token_factory: TokenFactory
) -> None:
    org = await org_of(client, world)
    admin = await org_token(client, token_factory, world.admin, org, "admin")
    others = await org_token(client, token_factory, world.member, org, "member")
    path = f"{ORGS}/{world.slug}"
    assert (await client.get(path, headers=admin.headers)).status_code == 200

    lowered = await client.patch(
        f"{path}/members/{world.admin.id}", json={"role": "viewer"}, headers=world.owner.headers
    )
    assert lowered.status_code == 200, lowered.text
    assert await refused_within(lambda: client.get(path, headers=admin.headers)) < 5.0
    # Only that member's tokens: the others' keep working.
    assert (await client.get(path, headers=others.headers)).status_code == 200
    # A token issued after the change carries the new role and works.
    await asyncio.sleep(0.01)
    again = await org_token(client, token_factory, world.admin, org, "viewer")
    assert (await client.get(path, headers=again.headers)).status_code == 200
    refused = await client.patch(path, json={"name": "No"}, headers=again.headers)
    assert_problem(refused, 403, "forbidden")


async def test_removal_revokes_the_members_org_tokens(
    client: httpx.AsyncClient, world: OrgWorld, token_factory: TokenFactory
) -> None:
    org = await org_of(client, world)
    member = await org_token(client, token_factory, world.member, org, "member")
    path = f"{ORGS}/{world.slug}"
    removed = await client.delete(f"{path}/members/{world.member.id}", headers=world.owner.headers)
    assert removed.status_code == 204, removed.text
    assert await refused_within(lambda: client.get(path, headers=member.headers)) < 5.0


async def test_leaving_revokes_ones_own_org_tokens(
    client: httpx.AsyncClient, world: OrgWorld, token_factory: TokenFactory
) -> None:
    org = await org_of(client, world)
    viewer = await org_token(client, token_factory, world.viewer, org, "viewer")
    path = f"{ORGS}/{world.slug}"
    left = await client.delete(f"{path}/members/{world.viewer.id}", headers=viewer.headers)
    assert left.status_code == 204, left.text
    response = await client.get(path, headers=viewer.headers)
    assert_problem(response, 401, "invalid_token")


async def test_deleting_the_org_revokes_every_members_org_tokens(
    client: httpx.AsyncClient, world: OrgWorld, token_factory: TokenFactory
) -> None:
    org = await org_of(client, world)
    member = await org_token(client, token_factory, world.member, org, "member")
    owner = await org_token(client, token_factory, world.owner, org, "owner")
    deleted = await client.delete(f"{ORGS}/{world.slug}", headers=owner.headers)
    assert deleted.status_code == 204, deleted.text
    for who in (member, owner):
        assert await refused_within(lambda: client.get(ORGS, headers=who.headers)) < 5.0  # noqa: B023


async def test_a_change_is_refused_when_tokens_cannot_be_revoked(
    client: httpx.AsyncClient, world: OrgWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis failing when the marker is written: 503 and nothing changed, rather than a
    change whose old tokens keep working."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    store = platform_state(client.app).revocations  # type: ignore[attr-defined]

    async def redis_down(*args: Any, **kwargs: Any) -> None:
        raise RedisConnectionError("Redis is down")

    monkeypatch.setattr(store, "revoke_org_tokens", redis_down)
    path = f"{ORGS}/{world.slug}/members/{world.member.id}"
    response = await client.patch(path, json={"role": "viewer"}, headers=world.owner.headers)
    assert_problem(response, 503, "dependency_unavailable")
    monkeypatch.undo()
    roles = await client.get(f"{ORGS}/{world.slug}/members", headers=world.owner.headers)
    by_id = {m["user_id"]: m["role"] for m in roles.json()["items"]}
    assert by_id[str(world.member.id)] == "member"


# The internal membership lookup (auth) -------------------------------------------------


def _service_token(tokens: TokenFactory, scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.mint(sub='svc:auth', role='service', scope=scope)}"}


async def test_auth_reads_a_membership_by_slug_or_id(
    client: httpx.AsyncClient, world: OrgWorld, token_factory: TokenFactory
) -> None:
    org = await org_of(client, world)
    headers = _service_token(token_factory, "orgs:memberships:read")
    for name in (world.slug, org["id"]):
        response = await client.get(
            f"/internal/v1/orgs/memberships/{world.admin.id}", params={"org": name}, headers=headers
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"org_id": org["id"], "org_slug": world.slug, "role": "admin"}


@pytest.mark.parametrize("org", ["member-of-none", "not a slug", str(uuid.UUID(int=7))])
async def test_a_non_member_or_unknown_org_is_404(
    client: httpx.AsyncClient, world: OrgWorld, token_factory: TokenFactory, org: str
) -> None:
    headers = _service_token(token_factory, "orgs:memberships:read")
    response = await client.get(
        f"/internal/v1/orgs/memberships/{world.outsider.id}",
        params={"org": world.slug if org == "member-of-none" else org},
        headers=headers,
    )
    assert_problem(response, 404, "not_found")


async def test_the_membership_lookup_is_for_auths_service_token_only(
    client: httpx.AsyncClient, world: OrgWorld, token_factory: TokenFactory
) -> None:
    path = f"/internal/v1/orgs/memberships/{world.owner.id}"
    for headers in (world.owner.headers, _service_token(token_factory, "users:read")):
        response = await client.get(path, params={"org": world.slug}, headers=headers)
        assert_problem(response, 403, "insufficient_scope")
    assert_problem(await client.get(path, params={"org": world.slug}), 401, "not_authenticated")


# The OpenAPI document ----------------------------------------------------------------


async def test_every_operation_documents_the_tokens_and_permission_it_takes(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/api/v1/orgs/openapi.json")).json()
    operations = {
        (method.upper(), path): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if path.startswith(("/api/", "/internal/"))
    }
    for key, operation in operations.items():
        rules = operation["x-accepted-tokens"]
        assert rules, key
        assert operation["description"].endswith("; ".join(rules) + "."), key
    expected = {
        ("GET", "/api/v1/orgs/{slug}"): "org:read",
        ("PATCH", "/api/v1/orgs/{slug}"): "org:update",
        ("DELETE", "/api/v1/orgs/{slug}"): "org:delete",
        ("POST", "/api/v1/orgs/{slug}/members"): "members:write",
        ("GET", "/api/v1/orgs/{slug}/invitations"): "invitations:write",
        ("POST", "/api/v1/orgs"): "orgs:create",
    }
    for key, permission in expected.items():
        assert any(f"`{permission}`" in rule for rule in operations[key]["x-accepted-tokens"]), key
    internal = operations[("GET", "/internal/v1/orgs/memberships/{user_id}")]
    assert internal["x-accepted-tokens"] == ["a service token with scope `orgs:memberships:read`"]


async def test_an_org_token_acts_only_within_its_org(
    client: httpx.AsyncClient, world: OrgWorld, token_factory: TokenFactory
) -> None:
    """It may not create another org or join one; the user's own token may."""
    org = await org_of(client, world)
    owner = await org_token(client, token_factory, world.owner, org, "owner")
    created = await client.post(
        ORGS,
        json={"name": "Elsewhere", "slug": f"else-{uuid.uuid4().hex[:8]}"},
        headers=owner.headers,
    )
    assert_problem(created, 403, "insufficient_scope")
    outsider_org = await org_token(client, token_factory, world.outsider, org, "viewer")
    accepted = await client.post(
        f"{ORGS}/invitations/{world.invitation_token}/accept", headers=outsider_org.headers
    )
    assert_problem(accepted, 403, "insufficient_scope")
    accepted = await client.post(
        f"{ORGS}/invitations/{world.invitation_token}/accept", headers=world.outsider.headers
    )
    assert accepted.status_code == 201, accepted.text


async def test_an_expired_org_token_is_401(
    client: httpx.AsyncClient, world: OrgWorld, token_factory: TokenFactory
) -> None:
    org = await org_of(client, world)
    token = token_factory.mint(
        sub=str(world.owner.id), ttl=timedelta(seconds=-60), **owner_claims(org)
    )
    response = await client.get(
        f"{ORGS}/{world.slug}", headers={"Authorization": f"Bearer {token}"}
    )
    assert_problem(response, 401, "invalid_token")
