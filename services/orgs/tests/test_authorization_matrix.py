"""Who may call what: one table, every orgs endpoint times every kind of caller.

Each row is an endpoint (method + path template, exactly as the app declares it) with the
status each caller gets. `test_every_route_has_a_row` fails when the app has an endpoint
under /api/v1/orgs that the table does not cover, so a new endpoint cannot ship without
deciding who may call it.

Callers: the org's owner, admin, member and viewer; an outsider (a user who is not a
member); a platform admin who is not a member; and an anonymous caller. The invitation
used is addressed to the outsider's email; the member targeted is the viewer.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts

if TYPE_CHECKING:
    from conftest import ClientFactory, OrgWorld

CALLERS = ("owner", "admin", "member", "viewer", "outsider", "platform_admin", "anonymous")


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    statuses: tuple[int, int, int, int, int, int, int]  # in the order of CALLERS


MATRIX: tuple[Row, ...] = (
    # statuses: owner, admin, member, viewer, outsider, platform admin, anonymous
    Row("POST", "/api/v1/orgs", (201, 201, 201, 201, 201, 201, 401)),
    Row("GET", "/api/v1/orgs", (200, 200, 200, 200, 200, 200, 401)),
    Row("GET", "/api/v1/orgs/{slug}", (200, 200, 200, 200, 404, 200, 401)),
    Row("PATCH", "/api/v1/orgs/{slug}", (200, 200, 403, 403, 404, 200, 401)),
    Row("DELETE", "/api/v1/orgs/{slug}", (204, 403, 403, 403, 404, 204, 401)),
    Row("GET", "/api/v1/orgs/{slug}/members", (200, 200, 200, 200, 404, 200, 401)),
    Row("POST", "/api/v1/orgs/{slug}/members", (201, 201, 403, 403, 404, 201, 401)),
    Row("PATCH", "/api/v1/orgs/{slug}/members/{user_id}", (200, 200, 403, 403, 404, 200, 401)),
    # The target is the viewer: the viewer removing itself is leaving the org.
    Row("DELETE", "/api/v1/orgs/{slug}/members/{user_id}", (204, 204, 403, 204, 404, 204, 401)),
    Row("POST", "/api/v1/orgs/{slug}/invitations", (201, 201, 403, 403, 404, 201, 401)),
    Row("GET", "/api/v1/orgs/{slug}/invitations", (200, 200, 403, 403, 404, 200, 401)),
    Row(
        "DELETE",
        "/api/v1/orgs/{slug}/invitations/{invitation_id}",
        (204, 204, 403, 403, 404, 204, 401),
    ),
    # Addressed to the outsider: everyone else's email differs (403 email_mismatch).
    Row("POST", "/api/v1/orgs/invitations/{token}/accept", (403, 403, 403, 403, 201, 403, 401)),
    # The audit log and webhooks: admin+ (`audit:read`, `webhooks:write`).
    Row("GET", "/api/v1/orgs/{slug}/audit-log", (200, 200, 403, 403, 404, 200, 401)),
    Row("POST", "/api/v1/orgs/{slug}/webhooks", (201, 201, 403, 403, 404, 201, 401)),
    Row("GET", "/api/v1/orgs/{slug}/webhooks", (200, 200, 403, 403, 404, 200, 401)),
    Row(
        "DELETE",
        "/api/v1/orgs/{slug}/webhooks/{webhook_id}",
        (204, 204, 403, 403, 404, 204, 401),
    ),
    Row(
        "GET",
        "/api/v1/orgs/{slug}/webhooks/{webhook_id}/deliveries",
        (200, 200, 403, 403, 404, 200, 401),
    ),
)

# What the endpoints that take a body are sent, given the OrgWorld.
BODIES: dict[tuple[str, str], Callable[[OrgWorld], dict[str, Any]]] = {
    ("POST", "/api/v1/orgs"): lambda w: {"name": "New", "slug": f"new-{uuid.uuid4().hex[:8]}"},
    ("PATCH", "/api/v1/orgs/{slug}"): lambda w: {"name": "Renamed"},
    ("POST", "/api/v1/orgs/{slug}/members"): lambda w: {
        "user_id": str(w.newcomer.id),
        "role": "viewer",
    },
    ("PATCH", "/api/v1/orgs/{slug}/members/{user_id}"): lambda w: {"role": "member"},
    ("POST", "/api/v1/orgs/{slug}/invitations"): lambda w: {
        "email": "someone@example.com",
        "role": "member",
    },
    ("POST", "/api/v1/orgs/{slug}/webhooks"): lambda w: {
        "url": "http://127.0.0.1:9/hook",
        "events": ["member.added"],
    },
}

EXPECTED_CODES = {401: "not_authenticated", 403: None, 404: "not_found"}


def _fill(path: str, world: OrgWorld) -> str:
    return path.format(
        slug=world.slug,
        user_id=world.viewer.id,
        invitation_id=world.invitation_id,
        token=world.invitation_token,
        webhook_id=world.webhook_id,
    )


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("row", MATRIX, ids=lambda row: f"{row.method} {row.path}")
async def test_matrix(client: httpx.AsyncClient, world: OrgWorld, row: Row, caller: str) -> None:
    expected = row.statuses[CALLERS.index(caller)]
    who = world.caller(caller)
    body = BODIES.get((row.method, row.path))
    response = await client.request(
        row.method,
        _fill(row.path, world),
        json=body(world) if body else None,
        headers=who.headers if who else {},
    )
    assert response.status_code == expected, response.text
    if expected >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
        code = EXPECTED_CODES[expected]
        if code is not None:
            assert response.json()["code"] == code
        if expected == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")


def _org_routes(app: Any) -> set[tuple[str, str]]:
    # FastAPI 0.16x mounts included routers lazily; iter_route_contexts flattens them into
    # the effective (prefixed) paths, as the OpenAPI generator sees them.
    return {
        (method, context.path)
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
        and context.path is not None
        and context.path.startswith("/api/v1/orgs")
        for method in context.methods or ()
    }


async def test_every_route_has_a_row(make_client: ClientFactory) -> None:
    async with make_client() as client:
        routes = _org_routes(client.app)  # type: ignore[attr-defined]
    rows = {(row.method, row.path) for row in MATRIX}
    assert routes - rows == set(), "endpoints without a row in MATRIX"
    assert rows - routes == set(), "rows in MATRIX for endpoints that do not exist"
    assert BODIES.keys() <= rows, "bodies for endpoints that do not exist"
    assert all(len(row.statuses) == len(CALLERS) for row in MATRIX)
    assert len(routes) == 18
