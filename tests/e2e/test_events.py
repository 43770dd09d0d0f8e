"""Events end to end, as the README walks them: through nginx to the running services, a
webhook to a receiver on this machine gets the signed delivery of a member added; the org's
audit log and auth's security log show what happened, with the client's address as nginx
forwarded it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

pytestmark = pytest.mark.slow


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_delivery_and_audit_logs(
    api: httpx.Client, accounts: Any, receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = receiver
    alice, carol = accounts.create("alice"), accounts.create("carol")
    # users has Carol's profile before she is added: auth hands a registration to users
    # through its outbox, after the 201, so an immediate add could race it.
    assert api.get("/api/v1/users/me", headers=carol.auth).status_code == 200
    slug = f"events-{alice.id[:8]}"
    created = api.post("/api/v1/orgs", json={"name": "Events", "slug": slug}, headers=alice.auth)
    assert created.status_code == 201, created.text
    hook = api.post(
        f"/api/v1/orgs/{slug}/webhooks",
        json={"url": url, "events": ["member.added"]},
        headers=alice.auth,
    )
    assert hook.status_code == 201, hook.text
    secret = hook.json()["secret"]
    added = api.post(
        f"/api/v1/orgs/{slug}/members",
        json={"user_id": carol.id, "role": "member"},
        headers={**alice.auth, "User-Agent": "e2e-events/1"},
    )
    assert added.status_code == 201, added.text

    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        time.sleep(0.1)
    assert received, "no delivery within 10 s"
    headers, body = received[0]
    event = Webhook(secret).verify(body, headers)
    assert event["type"] == "member.added"
    assert event["org"]["slug"] == slug
    assert event["data"]["user_id"] == carol.id

    log = api.get(f"/api/v1/orgs/{slug}/audit-log", headers=alice.auth)
    assert log.status_code == 200, log.text
    items = log.json()["items"]
    assert [e["type"] for e in items] == ["member.added", "webhook.created", "org.created"]
    assert items[0]["id"] == event["id"]
    assert items[0]["user_agent"] == "e2e-events/1"
    assert items[0]["ip"] == "127.0.0.1"  # the client as nginx (a trusted proxy) saw it
    deliveries = api.get(
        f"/api/v1/orgs/{slug}/webhooks/{hook.json()['id']}/deliveries", headers=alice.auth
    )
    assert [d["status_code"] for d in deliveries.json()["items"]] == [204]

    admin = accounts.admin()
    security = api.get("/api/v1/auth/audit-log", params={"user_id": alice.id}, headers=admin.auth)
    assert security.status_code == 200, security.text
    assert [e["type"] for e in security.json()["items"]] == ["login.succeeded", "user.registered"]
    denied = api.get("/api/v1/auth/audit-log", headers=alice.auth)
    assert denied.status_code == 403
