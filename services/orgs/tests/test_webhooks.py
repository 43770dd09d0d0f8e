"""Webhooks: the CRUD of the contract, signed deliveries to a real HTTP receiver (verified
with the `standardwebhooks` library), retries after 500s and timeouts, order per org, a
crashed consumer's entries taken over (XAUTOCLAIM), the endpoint disabled after failing for
the whole retry period, and private destinations refused at registration and at delivery."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from orgs.config import OrgsSettings
from orgs.models import WebhookMessage
from orgs.webhooks.ssrf import DestinationRefused, check_destination, is_public
from orgs.webhooks.worker import GROUP, WebhookWorker
from platform_common.events import StreamConsumer
from platform_testing import Backends, assert_problem, wait_for

if TYPE_CHECKING:
    from conftest import ClientFactory, OrgsApi, OrgWorld, People

# Quick retries for the tests: 50 ms, 100 ms, ... capped at 200 ms.
FAST = {
    "webhooks_backoff_base_seconds": 0.05,
    "webhooks_backoff_max_seconds": 0.2,
    "webhooks_poll_seconds": 0.1,
    "events_poll_seconds": 0.1,
    "webhooks_timeout_seconds": 0.5,
    # An app stopped mid-read leaves its entries pending; later events wait (in order)
    # until another consumer takes them over.
    "webhooks_claim_idle_seconds": 1.0,
}


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1. `answer(request) -> (status, delay)` decides each
    response; every request is recorded with its answer."""

    answer: Callable[[Received], tuple[int, float]] = lambda r: (200, 0.0)
    requests: list[Received] = field(default_factory=list)
    answered: list[tuple[Received, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def succeeded(self) -> list[dict[str, Any]]:
        """The bodies answered 2xx, in the order they arrived."""
        with self.lock:
            return [r.json for r, status in self.answered if 200 <= status < 300]

    def for_type(self, kind: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.json["type"] == kind]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            received = Received(
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
                time.monotonic(),
            )
            with state.lock:
                state.requests.append(received)
            status, delay = state.answer(received)
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()
            except OSError:
                return  # the client gave up (a timeout)
            with state.lock:
                state.answered.append((received, status))

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
async def fast(make_client: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(**FAST) as client:
        yield client


async def create_org(client: httpx.AsyncClient, owner: Any) -> dict[str, Any]:
    """(Not conftest's `api`: that runs a second app, whose worker would join the group.)"""
    slug = f"org-{uuid.uuid4().hex[:10]}"
    response = await client.post(
        "/api/v1/orgs", json={"name": "Acme", "slug": slug}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def add_member(client: httpx.AsyncClient, slug: str, by: Any, who: Any, role: str) -> None:
    response = await client.post(
        f"/api/v1/orgs/{slug}/members",
        json={"user_id": str(who.id), "role": role},
        headers=by.headers,
    )
    assert response.status_code == 201, response.text


async def until(check: Callable[[], bool], within: float) -> None:
    async def predicate() -> bool:
        return check()

    await wait_for(predicate, within=within)


def hooks(slug: str) -> str:
    return f"/api/v1/orgs/{slug}/webhooks"


async def register(
    client: httpx.AsyncClient, slug: str, by: Any, url: str, events: list[str] | None = None
) -> dict[str, Any]:
    response = await client.post(
        hooks(slug), json={"url": url, "events": events or ["*"]}, headers=by.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def deliveries(
    client: httpx.AsyncClient, slug: str, by: Any, hook_id: str
) -> list[dict[str, Any]]:
    response = await client.get(
        f"{hooks(slug)}/{hook_id}/deliveries", params={"limit": 100}, headers=by.headers
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# CRUD ---------------------------------------------------------------------------------


async def test_create_list_delete(client: httpx.AsyncClient, world: OrgWorld) -> None:
    created = await register(
        client, world.slug, world.admin, "http://127.0.0.1:9/x", ["member.added", "org.updated"]
    )
    assert set(created) >= {"id", "url", "events", "secret", "created_at"}
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["member.added", "org.updated"]
    Verifier(created["secret"])  # a valid Standard Webhooks secret

    response = await client.get(hooks(world.slug), headers=world.admin.headers)
    assert response.status_code == 200
    page = response.json()
    assert page["total"] == 2  # the world's own webhook too
    assert {item["id"] for item in page["items"]} == {created["id"], world.webhook_id}
    assert all("secret" not in item for item in page["items"])

    path = f"{hooks(world.slug)}/{created['id']}"
    assert (await client.delete(path, headers=world.admin.headers)).status_code == 204
    assert_problem(await client.delete(path, headers=world.admin.headers), 404, "webhook_not_found")
    response = await client.get(f"{path}/deliveries", headers=world.admin.headers)
    assert_problem(response, 404, "webhook_not_found")


async def test_webhooks_of_another_org_are_not_found(
    client: httpx.AsyncClient, world: OrgWorld, api: OrgsApi
) -> None:
    other = await api.create_org(world.outsider)
    hook = await register(client, other["slug"], world.outsider, "http://127.0.0.1:9/x")
    path = f"{hooks(world.slug)}/{hook['id']}"
    assert_problem(await client.delete(path, headers=world.owner.headers), 404, "webhook_not_found")


@pytest.mark.parametrize(
    "events", [["no.such.type"], [], ["member.added", "bogus"], "member.added"]
)
async def test_unknown_event_types_are_422(
    client: httpx.AsyncClient, world: OrgWorld, events: Any
) -> None:
    response = await client.post(
        hooks(world.slug),
        json={"url": "http://127.0.0.1:9/x", "events": events},
        headers=world.owner.headers,
    )
    assert response.status_code == 422, response.text


# SSRF ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.5.4/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://100.64.0.1/hook",
        "ftp://example.com/hook",
        "http://user:pw@example.com/hook",
        "not a url",
    ],
)
async def test_private_destinations_are_refused_at_registration(
    make_client: ClientFactory, world: OrgWorld, url: str
) -> None:
    async with make_client(webhooks_allow_private=False) as client:
        response = await client.post(
            hooks(world.slug), json={"url": url, "events": ["*"]}, headers=world.owner.headers
        )
    assert_problem(response, 422, "webhook_url_refused")


def test_public_addresses() -> None:
    assert is_public("93.184.216.34") and is_public("2606:2800:220:1:248:1893:25c8:1946")
    assert not any(
        is_public(a) for a in ("127.0.0.1", "10.0.0.1", "169.254.1.1", "fe80::1", "fc00::1")
    )


async def test_dns_rebinding_connects_to_the_checked_address(receiver: Receiver) -> None:
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    first = await check_destination("http://hooks.test/x", allow_private=False, resolve=rebinding)
    assert first.address == "93.184.216.34"
    assert first.pinned_url() == "http://93.184.216.34:80/x"
    assert first.host_header == "hooks.test"
    with pytest.raises(DestinationRefused):
        await check_destination("http://hooks.test/x", allow_private=False, resolve=rebinding)


# Delivery -----------------------------------------------------------------------------


async def test_a_change_is_delivered_signed_to_a_real_receiver(
    fast: httpx.AsyncClient, people: People, receiver: Receiver
) -> None:
    owner, bob = people.user("owner"), people.user("bob")
    org = await create_org(fast, owner)
    hook = await register(fast, org["slug"], owner, receiver.url, ["member.added"])
    await add_member(fast, org["slug"], owner, bob, "admin")

    await until(lambda: len(receiver.requests) >= 1, within=5)
    request = receiver.requests[0]
    assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= request.headers.keys()
    assert request.headers["content-type"] == "application/json"
    body = Verifier(hook["secret"]).verify(request.body, request.headers)
    assert body["type"] == "member.added"
    assert body["org"] == {"id": org["id"], "slug": org["slug"]}
    assert body["data"]["role"] == "admin" and body["data"]["user_id"] == str(bob.id)
    assert set(body) == {"id", "type", "occurred_at", "org", "data"}
    assert request.headers["webhook-id"] == body["id"]
    assert request.headers["webhook-signature"].startswith("v1,")
    with pytest.raises(WebhookVerificationError):
        Verifier("whsec_" + "A" * 44).verify(request.body, request.headers)

    # Only the subscribed type: org.created, webhook.created were not sent.
    assert [r.json["type"] for r in receiver.requests] == ["member.added"]
    # The attempt is recorded once the receiver's answer is in, a moment after the request.
    attempts: list[dict[str, Any]] = []
    for _ in range(50):
        attempts = await deliveries(fast, org["slug"], owner, hook["id"])
        if attempts:
            break
        await asyncio.sleep(0.1)
    assert [(a["attempt"], a["status_code"], a["error"]) for a in attempts] == [(1, 200, None)]
    assert attempts[0]["event_id"] == body["id"]
    assert attempts[0]["event_type"] == "member.added"
    assert attempts[0]["next_attempt_at"] is None


async def test_retries_after_500s_and_timeouts_with_every_attempt_listed(
    fast: httpx.AsyncClient, people: People, receiver: Receiver
) -> None:
    plan = iter([(500, 0.0), (503, 0.0), (200, 1.0), (200, 0.0)])  # 1 s > the 0.5 s timeout
    receiver.answer = lambda r: next(plan)
    owner = people.user("owner")
    org = await create_org(fast, owner)
    hook = await register(fast, org["slug"], owner, receiver.url, ["org.updated"])
    response = await fast.patch(
        f"/api/v1/orgs/{org['slug']}", json={"name": "Again"}, headers=owner.headers
    )
    assert response.status_code == 200

    async def four_attempts() -> bool:
        return len(await deliveries(fast, org["slug"], owner, hook["id"])) == 4

    await wait_for(four_attempts, within=10)
    attempts = list(reversed(await deliveries(fast, org["slug"], owner, hook["id"])))
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 4]
    assert [a["status_code"] for a in attempts] == [500, 503, None, 200]
    assert attempts[0]["error"] == "HTTP 500"
    assert attempts[2]["error"].startswith("timeout")
    assert all(a["next_attempt_at"] is not None for a in attempts[:3])
    assert attempts[3]["next_attempt_at"] is None
    assert len({a["event_id"] for a in attempts}) == 1
    # The same message each time: same id, same body, a fresh signature.
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    assert len({r.body for r in receiver.requests}) == 1
    for r in receiver.requests:
        Verifier(hook["secret"]).verify(r.body, r.headers)


async def test_an_endpoint_failing_for_the_retry_period_is_disabled(
    make_client: ClientFactory,
    people: People,
    receiver: Receiver,
) -> None:
    receiver.answer = lambda r: (500, 0.0)
    # Long enough for several attempts even when the first comes late on a loaded machine
    # (at 0.5 s, one CI run saw the first attempt after the period: given up at once).
    async with make_client(**FAST, webhooks_retry_period_seconds=3) as client:
        owner = people.user("owner")
        org = await create_org(client, owner)
        hook = await register(client, org["slug"], owner, receiver.url, ["org.updated"])
        await client.patch(f"/api/v1/orgs/{org['slug']}", json={"name": "X"}, headers=owner.headers)

        async def disabled() -> bool:
            response = await client.get(hooks(org["slug"]), headers=owner.headers)
            return any(i["id"] == hook["id"] and i["disabled_at"] for i in response.json()["items"])

        await wait_for(disabled, within=15)
        response = await client.get(
            f"/api/v1/orgs/{org['slug']}/audit-log",
            params={"type": "webhook.disabled"},
            headers=owner.headers,
        )
        [event] = response.json()["items"]
        assert event["target"] == {"type": "webhook", "id": hook["id"]}
        assert event["actor"]["kind"] == "system"
        attempts = await deliveries(client, org["slug"], owner, hook["id"])
        assert len(attempts) >= 2 and all(a["status_code"] == 500 for a in attempts)
        assert attempts[0]["next_attempt_at"] is None  # the last one: given up
        # Nothing more is sent to a disabled endpoint.
        count = len(receiver.requests)
        await client.patch(f"/api/v1/orgs/{org['slug']}", json={"name": "Y"}, headers=owner.headers)
        await asyncio.sleep(0.5)
        assert len(receiver.requests) == count


async def test_order_per_org_under_concurrent_changes(
    fast: httpx.AsyncClient, people: People, receiver: Receiver
) -> None:
    # Every first attempt fails: event N+1 must wait until N got through.
    seen: set[str] = set()

    def first_fails(r: Received) -> tuple[int, float]:
        event_id = r.json["id"]
        if event_id in seen:
            return 200, 0.0
        seen.add(event_id)
        return 500, 0.0

    receiver.answer = first_fails
    owner = people.user("owner")
    org = await create_org(fast, owner)
    await register(fast, org["slug"], owner, receiver.url, ["member.added"])
    newcomers = [people.user(f"n{i}") for i in range(8)]
    responses = await asyncio.gather(
        *(
            fast.post(
                f"/api/v1/orgs/{org['slug']}/members",
                json={"user_id": str(who.id), "role": "member"},
                headers=owner.headers,
            )
            for who in newcomers
        )
    )
    assert all(r.status_code == 201 for r in responses)

    await until(lambda: len(receiver.succeeded()) == 8, within=15)
    stream_order = await member_added_ids_in_stream(fast, org["slug"])
    assert [b["id"] for b in receiver.succeeded()] == stream_order
    # Each event was first tried only after the previous one had succeeded.
    with receiver.lock:
        answered = list(receiver.answered)
        requests = list(receiver.requests)
    success_at = {r.json["id"]: r.at for r, status in answered if status == 200}
    first_try = {}
    for r in requests:
        first_try.setdefault(r.json["id"], r.at)
    for earlier, later in itertools.pairwise(stream_order):
        assert first_try[later] >= success_at[earlier]


async def member_added_ids_in_stream(client: httpx.AsyncClient, slug: str) -> list[str]:
    settings = client.app.state.platform.settings  # type: ignore[attr-defined]
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        entries = await redis.xrange("events:orgs")
    finally:
        await redis.aclose()
    events = [json.loads(fields["event"]) for _, fields in entries]
    return [
        e["id"] for e in events if e["type"] == "member.added" and e["data"].get("slug") == slug
    ]


async def test_a_crashed_consumers_entries_are_claimed_and_delivered(
    make_client: ClientFactory,
    people: People,
    receiver: Receiver,
    backends: Backends,
    engine: AsyncEngine,
) -> None:
    # The app relays events; the delivery workers are driven by the test.
    async with make_client(**FAST, webhooks_worker_enabled=False) as client:
        settings: OrgsSettings = client.app.state.platform.settings  # type: ignore[attr-defined]
        owner, bob = people.user("owner"), people.user("bob")
        org = await create_org(client, owner)
        hook = await register(client, org["slug"], owner, receiver.url, ["member.added"])
        redis = Redis.from_url(backends.redis_url, decode_responses=True)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        survivor = WebhookWorker(
            sessions,
            redis,
            settings.model_copy(update={"webhooks_claim_idle_seconds": 0.3}),
            consumer_name="survivor",
        )
        try:
            await survivor.consumer.ensure_group()
            await survivor.run_once()  # the group now reads from here on
            await add_member(client, org["slug"], owner, bob, "member")

            # A consumer reads the entry, then dies before acknowledging it.
            async def unhandled(*_: Any) -> None:
                raise AssertionError("the crashed consumer handles nothing")

            crashed = StreamConsumer(
                redis, "events:orgs", group=GROUP, name="crashed", handler=unhandled
            )

            async def read_by_crashed() -> bool:
                entries = await crashed.read(block_ms=100)
                return any(
                    json.loads(fields["event"])["type"] == "member.added" for _, fields in entries
                )

            await wait_for(read_by_crashed, within=5)
            pending = await redis.xpending("events:orgs", GROUP)
            assert pending["pending"] >= 1

            # Not yet idle long enough: the survivor leaves it alone, nothing is sent.
            await survivor.run_once()
            await survivor.drain()
            assert receiver.requests == []

            await asyncio.sleep(0.4)
            await survivor.run_once()  # XAUTOCLAIM: the entry is the survivor's now
            await survivor.send_due()
            await survivor.drain()
            assert [r.json["type"] for r in receiver.requests] == ["member.added"]
            assert receiver.requests[0].json["data"]["user_id"] == str(bob.id)
            assert (await redis.xpending("events:orgs", GROUP))["pending"] == 0
            async with sessions() as db:
                states = (
                    await db.scalars(
                        select(WebhookMessage.state).where(
                            WebhookMessage.webhook_id == uuid.UUID(hook["id"])
                        )
                    )
                ).all()
            assert states == ["succeeded"]
        finally:
            await survivor.aclose()
            await redis.aclose()


async def test_private_destinations_are_refused_at_delivery(
    make_client: ClientFactory,
    people: People,
    receiver: Receiver,
) -> None:
    owner = people.user("owner")
    async with make_client(**FAST) as client:  # private allowed when registering...
        org = await create_org(client, owner)
        hook = await register(client, org["slug"], owner, receiver.url, ["org.updated"])
    async with make_client(**FAST, webhooks_allow_private=False) as client:  # ...not now
        await client.patch(f"/api/v1/orgs/{org['slug']}", json={"name": "Z"}, headers=owner.headers)

        async def attempted() -> bool:
            return bool(await deliveries(client, org["slug"], owner, hook["id"]))

        await wait_for(attempted, within=5)
        attempt = (await deliveries(client, org["slug"], owner, hook["id"]))[-1]
        assert attempt["status_code"] is None
        assert attempt["error"].startswith("refused:")
        assert "127.0.0.1" in attempt["error"]
    assert receiver.requests == []


async def test_delivery_connects_to_the_resolved_address_with_the_urls_host(
    make_client: ClientFactory,
    people: People,
    receiver: Receiver,
    backends: Backends,
    engine: AsyncEngine,
) -> None:
    async with make_client(**FAST, webhooks_worker_enabled=False) as client:
        settings: OrgsSettings = client.app.state.platform.settings  # type: ignore[attr-defined]
        owner = people.user("owner")
        org = await create_org(client, owner)
        url = f"http://hooks.example.test:{receiver.port}/hook"
        hook = await register(client, org["slug"], owner, url, ["org.updated"])
        resolved: list[str] = []

        async def resolve(host: str, port: int) -> list[str]:
            resolved.append(host)
            return ["127.0.0.1"]

        redis = Redis.from_url(backends.redis_url, decode_responses=True)
        worker = WebhookWorker(
            async_sessionmaker(engine, expire_on_commit=False), redis, settings, resolve=resolve
        )
        try:
            await client.patch(
                f"/api/v1/orgs/{org['slug']}", json={"name": "Q"}, headers=owner.headers
            )

            async def delivered() -> bool:
                await worker.run_once()
                await worker.drain()
                return bool(receiver.requests)

            await wait_for(delivered, within=5)
        finally:
            await worker.aclose()
            await redis.aclose()
    assert resolved == ["hooks.example.test"]
    assert receiver.requests[0].headers["host"] == f"hooks.example.test:{receiver.port}"
    Verifier(hook["secret"]).verify(receiver.requests[0].body, receiver.requests[0].headers)
