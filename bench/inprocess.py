"""The hot read paths driven straight through the ASGI app, in this process, on real PostgreSQL
and Redis: no server, no load generator, so the figure is the app's own cost per request.

    uv run python bench/inprocess.py [--requests 4000] [--concurrency 32] [--profile out.txt]

Builds users' and orgs' apps with production-like settings (rate limiting, the deadline layer,
the metrics), a user with a profile and an organization of which it is a member, then sends
`GET /api/v1/users/{own id}` and `GET /api/v1/orgs/{slug}` with `--concurrency` requests in
flight. Prints the CPU time per request (the process's own, which is what py-spy samples in a
worker under wrk) and the wall time. A tool for the loop of profiling and changing; the
figures of record are bench/run.py's (wrk against gunicorn, ratios to the bare endpoint).
`--profile` writes cProfile's top functions by cumulative and by own time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import os
import pstats
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from platform_common import migrations
from platform_testing import TEST_AUDIENCE, TEST_ISSUER, TokenFactory, jwks_transport
from platform_testing.backends import ensure_revocation_epoch

DATABASE = os.environ.get("BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
ROOT = Path(__file__).resolve().parent.parent


async def fresh_database(name: str, service: str) -> str:
    admin = create_async_engine(f"{DATABASE}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    url = f"{DATABASE}/{name}"
    script = ROOT / "services" / service / "src" / service / "migrations"
    await asyncio.to_thread(migrations.upgrade, script, url)
    return url


def settings_for(url: str) -> dict[str, Any]:
    return {
        "environment": "test",
        "database_url": url,
        "redis_url": REDIS,
        "jwt_issuer": TEST_ISSUER,
        "jwt_audience": TEST_AUDIENCE,
        "jwks_url": "https://auth.test/api/v1/auth/jwks.json",
        "rate_limit_user": "100000000/minute",
        "log_level": "warning",
    }


class Driver:
    """One request at a time straight through an ASGI app, with these headers (bench/
    auth_inprocess.py uses it too)."""

    def __init__(self, app: Any, headers: list[tuple[bytes, bytes]]) -> None:
        self.app, self.headers = app, headers

    async def request(
        self, method: str, path: str, body: bytes = b"", content_type: bytes = b"application/json"
    ) -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        headers = list(self.headers)
        if body:
            headers += [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        await self.app(scope, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def measure(
    name: str, call: Callable[[], Awaitable[tuple[int, bytes]]], requests: int, concurrency: int
) -> None:
    for _ in range(200):  # warm: prepared statements, pools, caches
        status, body = await call()
        assert status == 200, body
    queue = iter(range(requests))
    latencies: list[float] = []

    async def lane() -> None:
        for _ in queue:
            started = time.perf_counter()
            status, body = await call()
            latencies.append(time.perf_counter() - started)
            assert status == 200, body

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    print(
        f"{name:28} {cpu / requests * 1e6:6.0f} µs CPU/request  "
        f"{requests / wall:6.0f} req/s in-process ({concurrency} in flight)  "
        f"p50 {p50 * 1000:6.2f} ms  p99 {p99 * 1000:6.2f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--only", choices=["users", "orgs"])
    parser.add_argument(
        "--otel", action="store_true", help="with the OpenTelemetry SDK on (bench/run.py: off)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of both services, e.g. --set rate_limit_enabled=false",
    )
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    if not args.otel:
        os.environ["OTEL_SDK_DISABLED"] = "true"

    from orgs.app import create_app as create_orgs
    from orgs.config import OrgsSettings
    from users.app import create_app as create_users
    from users.config import UsersSettings

    tokens = TokenFactory(TEST_ISSUER, TEST_AUDIENCE)
    users_url = await fresh_database("perf_users", "users")
    orgs_url = await fresh_database("perf_orgs", "orgs")
    await ensure_revocation_epoch(REDIS)
    user_id = uuid.uuid4()
    token = tokens.mint(sub=str(user_id), role="user", email="ada@example.com", name="Ada")
    service = tokens.mint(sub="svc:auth", role="service", scope="users:provision")
    headers = [(b"authorization", f"Bearer {token}".encode()), (b"host", b"bench")]

    from asgi_lifespan import LifespanManager

    # As gunicorn's post_worker_init does (platform_common.gunicorn_conf); the apps' lifespans
    # then freeze what they build too.
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)

    users_app = create_users(
        UsersSettings(**settings_for(users_url), **overrides),
        transports={"jwks": jwks_transport(tokens)},
    )
    orgs_app = create_orgs(
        OrgsSettings(**settings_for(orgs_url), **overrides),
        transports={"jwks": jwks_transport(tokens)},
    )
    async with LifespanManager(users_app) as users, LifespanManager(orgs_app) as orgs:
        users_driver = Driver(users.app, headers)
        provision = Driver(users.app, [(b"authorization", f"Bearer {service}".encode())])
        event = {
            "event": "user.registered",
            "id": str(user_id),
            "email": "ada@example.com",
            "name": "Ada",
            "role": "user",
            "is_active": True,
            "created_at": "2026-01-01T00:00:00+00:00",
            "version": 1,
        }
        status, body = await provision.request(
            "PUT", f"/internal/v1/users/{user_id}", json.dumps(event).encode()
        )
        assert status == 200, body
        orgs_driver = Driver(orgs.app, headers)
        status, body = await orgs_driver.request(
            "POST", "/api/v1/orgs", b'{"name":"Bench","slug":"bench"}'
        )
        assert status == 201, body

        from baseline import create_app as create_bare

        bare = Driver(create_bare(), [(b"host", b"bench")])
        calls: list[tuple[str, Callable[[], Awaitable[tuple[int, bytes]]]]] = [
            ("bare FastAPI /ping", lambda: bare.request("GET", "/ping"))
        ]
        if args.only in (None, "users"):
            calls.append(
                (
                    "users GET /users/{own id}",
                    lambda: users_driver.request("GET", f"/api/v1/users/{user_id}"),
                )
            )
        if args.only in (None, "orgs"):
            calls.append(
                ("orgs GET /orgs/{slug}", lambda: orgs_driver.request("GET", "/api/v1/orgs/bench"))
            )
        profiler = cProfile.Profile() if args.profile else None
        for name, call in calls:
            if profiler:
                profiler.enable()
            await measure(name, call, args.requests, args.concurrency)
            if profiler:
                profiler.disable()
        if profiler and args.profile:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("cumulative").print_stats(60)
            stats.sort_stats("tottime").print_stats(40)
            args.profile.write_text(out.getvalue())


if __name__ == "__main__":
    asyncio.run(main())
