"""`WebSocket /api/v1/orgs/{slug}/live`, against the real app served by uvicorn (in this
process, on a port of its own) on the tests' PostgreSQL and Redis, with the `websockets`
client. Events are published as the event stream contract says (XADD events:orgs with one
field `event`), which is what orgs' events core does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from orgs.app import create_app
from orgs.config import OrgsSettings
from orgs.models import Base
from platform_common.revocation import RevocationStore
from platform_testing import (
    Backends,
    Caller,
    FakePatExchange,
    RedisServer,
    TokenFactory,
    flush_redis,
    free_port,
    jwks_transport,
    reset_backends,
    verifying_settings,
    wait_for,
)

if TYPE_CHECKING:
    from conftest import FakeUsers, People

STREAM = "events:orgs"


class _Server(uvicorn.Server):
    """uvicorn in this process; a signal stops it without being raised again into pytest."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.should_exit = True


class Live:
    """One running orgs process (a replica): its HTTP and WebSocket addresses."""

    def __init__(self, port: int, app: Any) -> None:
        self.port = port
        self.app = app
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def ws_url(self, slug: str) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/orgs/{slug}/live"

    def connect(self, slug: str, token: str | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        return connect(self.ws_url(slug), additional_headers=headers, open_timeout=5, **kwargs)

    async def create_org(self, owner: Caller) -> dict[str, Any]:
        slug = f"live-{uuid.uuid4().hex[:10]}"
        response = await self.http.post(
            "/api/v1/orgs", json={"name": "Live", "slug": slug}, headers=owner.headers
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def add_member(self, slug: str, by: Caller, who: Caller, role: str) -> None:
        response = await self.http.post(
            f"/api/v1/orgs/{slug}/members",
            json={"user_id": str(who.id), "role": role},
            headers=by.headers,
        )
        assert response.status_code == 201, response.text

    async def metric(self, name: str) -> float:
        text = (await self.http.get("/metrics")).text
        for line in text.splitlines():
            if line.startswith((name + " ", name + "{")):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} not in /metrics")


Serve = Callable[..., Any]


@pytest.fixture
async def serve(
    backends: Backends,
    engine: AsyncEngine,
    token_factory: TokenFactory,
    users: FakeUsers,
    pats: FakePatExchange,
) -> AsyncIterator[Serve]:
    """`async with serve(**settings) as live:` an orgs process served by uvicorn."""
    base = verifying_settings(
        engine.url.render_as_string(hide_password=False),
        backends.redis_url,
        users_url="http://users.test",
    )
    await flush_redis(backends.redis_url)  # with the revocation epoch auth keeps there

    @contextlib.asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[Live]:
        settings = OrgsSettings(**{**base, **overrides})
        transports = {
            "jwks": jwks_transport(token_factory),
            "users": httpx.MockTransport(users),
            "auth": pats.transport(),
        }
        app = create_app(settings, transports=transports)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = _Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            assert not task.done(), "uvicorn stopped before it started"
            await asyncio.sleep(0.01)
        live = Live(port, app)
        try:
            yield live
        finally:
            await live.http.aclose()
            server.should_exit = True
            await task
            sock.close()

    try:
        yield factory
    finally:
        await reset_backends(engine, Base.metadata, backends.redis_url)


@pytest.fixture
async def redis(backends: Backends) -> AsyncIterator[Redis]:
    client = Redis.from_url(backends.redis_url, decode_responses=True)
    yield client
    await client.aclose()


def event(
    kind: str, org_id: str | None, target_user: uuid.UUID | None = None, **data: Any
) -> dict[str, Any]:
    """An event as the contract has it."""
    return {
        "id": str(uuid.uuid4()),
        "type": kind,
        "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "actor": {"id": None, "kind": "system"},
        "org_id": org_id,
        "target": {"type": "user", "id": str(target_user or uuid.uuid4())},
        "ip": None,
        "user_agent": None,
        "request_id": None,
        "data": {"role": "member", **data},
    }


async def publish(redis: Redis, body: dict[str, Any]) -> float:
    """XADD the event as orgs' events core does; when (monotonic) it was added."""
    await redis.xadd(STREAM, {"event": json.dumps(body)}, maxlen=10_000, approximate=True)
    return time.monotonic()


async def receive_json(ws: ClientConnection, within: float = 1.0) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.recv(), within)
    assert isinstance(message, str)
    body: dict[str, Any] = json.loads(message)
    return body


async def close_code(ws: ClientConnection, within: float) -> int | None:
    """Read (and drop) messages until the server closes; its close code."""
    async with asyncio.timeout(within):
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.recv()
    return ws.close_code


async def org_with(
    live: Live, people: People, **roles: str
) -> tuple[dict[str, Any], Caller, dict[str, Caller]]:
    """An org of a fresh owner with a member in each of `roles` (name -> role)."""
    owner = people.user("owner")
    org = await live.create_org(owner)
    members = {name: people.user(name) for name in roles}
    for name, role in roles.items():
        await live.add_member(org["slug"], owner, members[name], role)
    return org, owner, members


async def test_a_member_receives_each_event_of_the_org_within_a_second(
    serve: Serve, people: People, redis: Redis
) -> None:
    async with serve() as live:
        org, owner, members = await org_with(live, people, viewer="viewer")
        other, _, _ = await org_with(live, people)
        async with (
            live.connect(org["slug"], owner.token) as owner_ws,
            live.connect(org["slug"], members["viewer"].token) as viewer_ws,
        ):
            await wait_for(lambda: _connections(live, 2), within=5)
            await publish(redis, event("member.added", other["id"]))  # another org's
            added = event("member.added", org["id"], uuid.uuid4(), role="viewer")
            published = await publish(redis, added)
            for ws in (owner_ws, viewer_ws):
                assert await receive_json(ws) == added
                assert time.monotonic() - published < 1.0
            # Nothing of the other org came before it, and nothing is pending after it.
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(owner_ws.recv(), 0.3)
            assert await live.metric("live_connections") == 2
            assert await live.metric("live_messages_sent_total") == 2


async def _connections(live: Live, count: int) -> bool:
    return await live.metric("live_connections") == count


async def test_a_browser_authenticates_with_a_first_message(
    serve: Serve, people: People, redis: Redis
) -> None:
    async with serve() as live:
        org, owner, _ = await org_with(live, people)
        async with live.connect(org["slug"]) as ws:
            await ws.send(json.dumps({"token": owner.token}))
            await wait_for(lambda: _connections(live, 1), within=5)
            renamed = event("org.updated", org["id"], slug=org["slug"])
            await publish(redis, renamed)
            assert await receive_json(ws) == renamed


async def test_without_a_valid_token_the_socket_closes_4401(
    serve: Serve, people: People, token_factory: TokenFactory
) -> None:
    async with serve(live_auth_timeout_seconds=0.5) as live:
        org, owner, _ = await org_with(live, people)
        slug = org["slug"]
        started = time.monotonic()
        async with live.connect(slug) as ws:  # says nothing
            assert await close_code(ws, within=3) == 4401
        assert 0.4 < time.monotonic() - started < 2.5
        for first in ("not json", json.dumps({"token": 42}), json.dumps(["token"])):
            async with live.connect(slug) as ws:
                await ws.send(first)
                assert await close_code(ws, within=3) == 4401
        async with live.connect(slug) as ws:
            await ws.send(json.dumps({"token": "not-a-jwt"}))
            assert await close_code(ws, within=3) == 4401
        expired = token_factory.mint(sub=str(owner.id), ttl=timedelta(seconds=-60))
        for token in ("not-a-jwt", expired):
            async with live.connect(slug, token) as ws:
                assert await close_code(ws, within=3) == 4401
        async with connect(
            live.ws_url(slug), additional_headers={"Authorization": f"Basic {owner.token}"}
        ) as ws:
            assert await close_code(ws, within=3) == 4401


async def test_non_members_and_unknown_orgs_close_4404_and_the_wrong_token_4403(
    serve: Serve, people: People, token_factory: TokenFactory, pats: FakePatExchange
) -> None:
    async with serve() as live:
        org, owner, members = await org_with(live, people, member="member")
        other, _, _ = await org_with(live, people)
        outsider = people.user("outsider")
        for slug, caller in ((org["slug"], outsider), ("no-such-org", owner)):
            async with live.connect(slug, caller.token) as ws:
                assert await close_code(ws, within=3) == 4404
        # A service token, an org-scoped token of another org, a PAT without org:read.
        service = token_factory.mint(sub="svc:users", scope="orgs:memberships:read")
        other_orgs = _org_token(token_factory, owner, other, "owner")
        narrow_pat = pats.issue(owner, ["profile:read"])
        for token in (service, other_orgs, narrow_pat):
            async with live.connect(org["slug"], token) as ws:
                assert await close_code(ws, within=3) == 4403
        assert await live.metric("live_connections") == 0


def _org_token(factory: TokenFactory, caller: Caller, org: dict[str, Any], role: str) -> str:
    from platform_common.permissions import permissions_for

    return factory.mint(
        sub=str(caller.id),
        org_id=org["id"],
        org_slug=org["slug"],
        org_role=role,
        permissions=sorted(permissions_for(role)),
        org_checked_at=int(time.time() * 1000),
    )


async def test_org_scoped_tokens_and_personal_access_tokens_are_accepted(
    serve: Serve, people: People, token_factory: TokenFactory, pats: FakePatExchange, redis: Redis
) -> None:
    async with serve() as live:
        org, owner, members = await org_with(live, people, member="member")
        member = members["member"]
        org_token = _org_token(token_factory, member, org, "member")
        pat = pats.issue(owner, ["org:read"])
        async with live.connect(org["slug"], org_token) as a, live.connect(org["slug"], pat) as b:
            await wait_for(lambda: _connections(live, 2), within=5)
            added = event("member.added", org["id"])
            await publish(redis, added)
            assert await receive_json(a) == added
            assert await receive_json(b) == added


async def test_a_revoked_session_or_an_expired_token_closes_4401(
    serve: Serve, people: People, token_factory: TokenFactory, redis: Redis, pats: FakePatExchange
) -> None:
    async with serve(jwt_leeway_seconds=0) as live:
        org, owner, _ = await org_with(live, people)
        session = str(uuid.uuid4())
        revoked = token_factory.mint(sub=str(owner.id), sid=session)
        short = token_factory.mint(sub=str(owner.id), ttl=timedelta(seconds=2))
        pat = pats.issue(owner, ["org:read"])
        async with (
            live.connect(org["slug"], revoked) as ws_revoked,
            live.connect(org["slug"], short) as ws_short,
            live.connect(org["slug"], pat) as ws_pat,
        ):
            await wait_for(lambda: _connections(live, 3), within=5)
            # Logout-all, as auth records it: the session's revocation key in Redis.
            await RevocationStore(redis).revoke_sessions([session], ttl_seconds=900)
            pats.delete(pat)
            started = time.monotonic()
            assert await close_code(ws_revoked, within=3) == 4401
            assert time.monotonic() - started < 2.5
            assert await close_code(ws_short, within=4) == 4401
            assert await close_code(ws_pat, within=7) == 4401  # its verdict is cached 4 s


async def test_removal_closes_4403_after_the_event_and_others_stay(
    serve: Serve, people: People, redis: Redis
) -> None:
    async with serve(live_membership_check_seconds=60) as live:
        org, owner, members = await org_with(live, people, member="member")
        member = members["member"]
        async with (
            live.connect(org["slug"], owner.token) as owner_ws,
            live.connect(org["slug"], member.token) as member_ws,
        ):
            await wait_for(lambda: _connections(live, 2), within=5)
            removed = event("member.removed", org["id"], member.id)
            await publish(redis, removed)
            assert await receive_json(member_ws) == removed
            assert await close_code(member_ws, within=1) == 4403
            assert await receive_json(owner_ws) == removed
            later = event("member.added", org["id"])
            await publish(redis, later)
            assert await receive_json(owner_ws) == later


async def test_a_membership_ended_through_the_api_closes_4403(serve: Serve, people: People) -> None:
    async with serve(live_membership_check_seconds=0.5) as live:
        org, owner, members = await org_with(live, people, member="member")
        member = members["member"]
        async with live.connect(org["slug"], member.token) as ws:
            await wait_for(lambda: _connections(live, 1), within=5)
            response = await live.http.delete(
                f"/api/v1/orgs/{org['slug']}/members/{member.id}", headers=owner.headers
            )
            assert response.status_code == 204, response.text
            assert await close_code(ws, within=3) == 4403


async def test_every_replica_delivers_to_its_own_sockets(
    serve: Serve, people: People, redis: Redis
) -> None:
    async with serve() as one, serve() as two:
        org, owner, members = await org_with(one, people, viewer="viewer")
        viewer = members["viewer"]
        async with (
            one.connect(org["slug"], owner.token) as a,
            two.connect(org["slug"], viewer.token) as b,
        ):
            await wait_for(lambda: _connections(one, 1), within=5)
            await wait_for(lambda: _connections(two, 1), within=5)
            for _ in range(3):
                added = event("member.added", org["id"])
                published = await publish(redis, added)
                assert await receive_json(a) == added
                assert await receive_json(b) == added
                assert time.monotonic() - published < 1.0


async def test_a_client_that_does_not_read_is_dropped_not_buffered(
    serve: Serve, people: People, redis: Redis
) -> None:
    async with serve(live_send_queue=4) as live:
        org, owner, _ = await org_with(live, people)
        # A client that opens the socket and then never reads (with a small receive buffer).
        reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer.write(
            (
                f"GET /api/v1/orgs/{org['slug']}/live HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{live.port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {owner.token}\r\n\r\n"
            ).encode()
        )
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        try:
            await wait_for(lambda: _connections(live, 1), within=5)
            big = "x" * 256_000
            for _ in range(100):
                await publish(redis, event("org.updated", org["id"], padding=big))
                if await live.metric("live_connections") == 0:
                    break
            await wait_for(lambda: _connections(live, 0), within=5)
            assert await live.metric('live_closed_total{code="1008"}') == 1
            assert await live.metric("live_messages_sent_total") < 60
        finally:
            writer.close()


async def test_draining_closes_sockets_1001_before_the_server_stops(
    serve: Serve, people: People
) -> None:
    async with serve() as live:
        org, owner, _ = await org_with(live, people)
        async with live.connect(org["slug"], owner.token) as ws:
            await wait_for(lambda: _connections(live, 1), within=5)
            os.kill(os.getpid(), signal.SIGTERM)  # what the pod (gunicorn, uvicorn) gets
            assert await close_code(ws, within=5) == 1001


async def test_a_redis_failure_closes_1011(
    serve: Serve, people: People, engine: AsyncEngine
) -> None:
    own = RedisServer(free_port())
    own.start()
    try:
        await flush_redis(own.url)  # the revocation epoch auth would have written
        async with serve(redis_url=own.url) as live:
            org, owner, _ = await org_with(live, people)
            async with live.connect(org["slug"], owner.token) as ws:
                await wait_for(lambda: _connections(live, 1), within=5)
                own.kill()
                assert await close_code(ws, within=5) == 1011
            # Redis back (empty, as after a restart without persistence; auth writes the
            # epoch again): the reader reconnects by itself and new sockets get events.
            own.start()
            await flush_redis(own.url)
            async with live.connect(org["slug"], owner.token) as ws:
                await wait_for(lambda: _connections(live, 1), within=5)
                own_redis = Redis.from_url(own.url, decode_responses=True)
                try:
                    added = event("member.added", org["id"])
                    deadline = time.monotonic() + 10
                    while True:
                        await publish(own_redis, added)
                        with contextlib.suppress(TimeoutError):
                            assert await receive_json(ws, within=0.5) == added
                            break
                        assert time.monotonic() < deadline, "the reader did not come back"
                finally:
                    await own_redis.aclose()
    finally:
        own.kill()


async def test_org_deleted_closes_every_socket_of_the_org_4403(
    serve: Serve, people: People, redis: Redis
) -> None:
    async with serve(live_membership_check_seconds=60) as live:
        org, owner, members = await org_with(live, people, viewer="viewer")
        async with (
            live.connect(org["slug"], owner.token) as a,
            live.connect(org["slug"], members["viewer"].token) as b,
        ):
            await wait_for(lambda: _connections(live, 2), within=5)
            deleted = event("org.deleted", org["id"], slug=org["slug"])
            deleted["target"] = {"type": "org", "id": org["id"]}
            await publish(redis, deleted)
            for ws in (a, b):
                assert await receive_json(ws) == deleted
                assert await close_code(ws, within=1) == 4403
