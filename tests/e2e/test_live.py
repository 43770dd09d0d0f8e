"""The live socket through the real nginx ingress and the three real services: an event
published on `events:orgs` reaches members within a second; the socket closes 4404 for a
non-member, 4403 once the member is removed (DELETE members) and 4401 after logout-all."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from redis import Redis
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.slow


def ws_url(ingress: Any, slug: str) -> str:
    return f"ws://127.0.0.1:{ingress.port}/api/v1/orgs/{slug}/live"


def closed_with(ws: ClientConnection, within: float) -> int | None:
    """Read (and drop) messages until the server closes; its close code."""
    deadline = time.monotonic() + within
    try:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"still open after {within} s"
            ws.recv(timeout=left)
    except ConnectionClosed:
        return ws.close_code
    except TimeoutError as exc:
        raise AssertionError(f"still open after {within} s") from exc


def add_member(api: httpx.Client, slug: str, owner: Any, who: Any, role: str) -> None:
    # users learns of a new account through auth's outbox: it may take a moment.
    deadline = time.monotonic() + 10
    while True:
        response = api.post(
            f"/api/v1/orgs/{slug}/members",
            json={"user_id": who.id, "role": role},
            headers=owner.auth,
        )
        if response.status_code != 404 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert response.status_code == 201, response.text


def test_the_live_socket_through_the_ingress(
    api: httpx.Client, accounts: Any, platform: Any, ingress: Any
) -> None:
    owner, member, outsider = (accounts.create(n) for n in ("owner", "member", "outsider"))
    slug = f"live-{uuid.uuid4().hex[:10]}"
    created = api.post("/api/v1/orgs", json={"name": "Live", "slug": slug}, headers=owner.auth)
    assert created.status_code == 201, created.text
    org_id = created.json()["id"]
    add_member(api, slug, owner, member, "member")
    redis = Redis.from_url(platform["orgs"].env["ORGS_REDIS_URL"], decode_responses=True)

    with connect(ws_url(ingress, slug), additional_headers=outsider.auth, open_timeout=5) as ws:
        assert closed_with(ws, within=5) == 4404

    with (
        connect(ws_url(ingress, slug), additional_headers=member.auth, open_timeout=5) as member_ws,
        connect(ws_url(ingress, slug), open_timeout=5) as owner_ws,  # a browser's way
    ):
        owner_ws.send(json.dumps({"token": owner.access_token}))
        time.sleep(0.5)  # both authenticated and registered with the hub
        event = {
            "id": str(uuid.uuid4()),
            "type": "member.added",
            "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "actor": {"id": owner.id, "kind": "user"},
            "org_id": org_id,
            "target": {"type": "user", "id": str(uuid.uuid4())},
            "ip": None,
            "user_agent": None,
            "request_id": None,
            "data": {"role": "viewer"},
        }
        published = time.monotonic()
        redis.xadd("events:orgs", {"event": json.dumps(event)}, maxlen=100_000, approximate=True)
        for ws in (member_ws, owner_ws):
            assert json.loads(ws.recv(timeout=1.0)) == event
        assert time.monotonic() - published < 1.0

        removed = api.delete(f"/api/v1/orgs/{slug}/members/{member.id}", headers=owner.auth)
        assert removed.status_code == 204, removed.text
        # The member.removed event closes it at once; the membership recheck (every 5 s)
        # does it without one.
        assert closed_with(member_ws, within=8) == 4403

        out = api.post("/api/v1/auth/logout-all", headers=owner.auth)
        assert out.status_code == 204, out.text
        assert closed_with(owner_ws, within=5) == 4401
    redis.close()
