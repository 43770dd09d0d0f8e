"""auth's token paths driven straight through the ASGI app, in this process, on real
PostgreSQL and Redis: no server, no load generator, so the figure is the app's own cost.

    uv run python bench/auth_inprocess.py [--requests 4000] [--concurrency 32] [--only refresh]
        [--rounds 3] [--count] [--floor] [--py-spy /tmp/auth-profile]

Modelled on bench/inprocess.py. Builds auth's app with production-like settings (rate
limiting, the deadline layer, the metrics, Argon2's production cost, a generated P-256
signing key, a service client as `AUTH_SERVICE_CLIENTS` would give it), logs one account in
once per lane, then drives, with `--concurrency` requests in flight:

- `POST /api/v1/auth/refresh`: each lane keeps its own refresh token and sends the rotated
  one next (a rotated token used again would end its session);
- `POST /api/v1/auth/token` with `grant_type=client_credentials` (form, secret in the form).

Prints the CPU time per request (the process's own, which is what py-spy samples in a worker
under wrk), the wall time, and per request the SQL statements sent (an SQLAlchemy
`before_cursor_execute` listener, BEGIN/COMMIT not included: asyncpg sends those itself, see
`transactions`) and the Redis round trips and commands; beside the bare FastAPI endpoint
(bench/baseline.py). Uses Redis database 12 and the PostgreSQL database `perfauth_bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from inprocess import Driver  # bench/ is this script's folder, on sys.path
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from platform_common import migrations

DATABASE = os.environ.get("BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
DB_NAME = "perfauth_bench"
ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "benchmark passphrase 2026"
CLIENT_SECRET = "bench-client-secret"
CLIENT_CREDENTIALS_BODY = (
    f"grant_type=client_credentials&client_id=bench&client_secret={CLIENT_SECRET}"
).encode()

Call = Callable[[int], Awaitable[tuple[int, bytes]]]


class Counts:
    """SQL statements and Redis traffic seen while a scenario runs."""

    def __init__(self) -> None:
        self.sql: collections.Counter[str] = collections.Counter()
        self.redis_round_trips = 0
        self.redis_commands: collections.Counter[str] = collections.Counter()
        self.enabled = False

    def reset(self) -> None:
        self.sql.clear()
        self.redis_commands.clear()
        self.redis_round_trips = 0

    def install(self, engine: Any) -> None:
        def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if self.enabled:
                self.sql[" ".join(statement.split())[:90]] += 1

        event.listen(engine.sync_engine, "before_cursor_execute", before)

        def transaction(name: str) -> Callable[[Any], None]:
            def count(conn: Any) -> None:
                if self.enabled:  # in autocommit asyncpg sends no BEGIN, COMMIT or ROLLBACK
                    sent = conn.connection.dbapi_connection.isolation_level != "autocommit"
                    self.sql[name if sent else f"{name} (autocommit: not sent)"] += 1

            return count

        for name in ("begin", "commit", "rollback"):
            event.listen(engine.sync_engine, name, transaction(name.upper()))

        from redis.asyncio.connection import AbstractConnection

        send, pack, pack_many = (
            AbstractConnection.send_packed_command,
            AbstractConnection.pack_command,
            AbstractConnection.pack_commands,
        )
        counts = self

        async def send_packed_command(conn: Any, command: Any, check_health: bool = True) -> None:
            if counts.enabled:
                counts.redis_round_trips += 1
            await send(conn, command, check_health)

        def pack_command(conn: Any, *args: Any) -> Any:
            if counts.enabled:
                counts.redis_commands[str(args[0])] += 1
            return pack(conn, *args)

        def pack_commands(conn: Any, commands: Any) -> Any:
            commands = list(commands)
            if counts.enabled:
                counts.redis_commands.update(str(c[0]) for c in commands)
            return pack_many(conn, commands)

        AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign,assignment]
        AbstractConnection.pack_command = pack_command  # type: ignore[method-assign,assignment]
        AbstractConnection.pack_commands = pack_commands  # type: ignore[method-assign,assignment]

    def report(self, requests: int) -> str:
        lines = [f"    SQL per request: {sum(self.sql.values()) / requests:.2f}"]
        lines += [f"      {n / requests:5.2f}  {s}" for s, n in self.sql.most_common()]
        lines.append(
            f"    Redis round trips per request: {self.redis_round_trips / requests:.2f}, "
            "commands: "
            + ", ".join(f"{c} {n / requests:.2f}" for c, n in self.redis_commands.most_common())
        )
        return "\n".join(lines)


async def fresh_database() -> str:
    admin = create_async_engine(f"{DATABASE}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    await admin.dispose()
    url = f"{DATABASE}/{DB_NAME}"
    script = ROOT / "services" / "auth" / "src" / "auth" / "migrations"
    await asyncio.to_thread(migrations.upgrade, script, url)
    return url


async def clean_redis() -> None:
    """Database 12 is this bench's own: what an earlier run left there goes."""
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


def signing_keys() -> Path:
    keys = Path(tempfile.mkdtemp(prefix="perfauth-keys-"))
    (keys / "current.pem").write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return keys


def settings(url: str, keys: Path, overrides: dict[str, str]) -> Any:
    from auth.config import AuthSettings

    values: dict[str, Any] = {
        "environment": "test",
        "database_url": url,
        "redis_url": REDIS,
        "signing_keys_dir": keys,
        "jwt_issuer": "http://auth.bench/api/v1/auth",
        "users_url": "http://users.bench",
        "orgs_url": "http://orgs.bench",
        "log_level": "warning",
        # As bench/run.py: the limiter runs on every request but never trips.
        **{f"rate_limit_{role}": "100000000/minute" for role in ("anonymous", "user", "admin")},
        "rate_limit_service": "100000000/minute",
        "login_max_attempts_per_ip": 100_000_000,
        "login_max_failures_per_account": 100_000_000,
        "service_clients": {
            "bench": {
                "secret_sha256": hashlib.sha256(CLIENT_SECRET.encode()).hexdigest(),
                "scopes": ["users:read"],
            }
        },
        **overrides,
    }
    return AuthSettings(**values)


BENCH_HEADERS = [(b"host", b"bench"), (b"user-agent", b"bench")]


def start_sampling(raw: Path) -> subprocess.Popen[bytes]:
    """py-spy on this process until `stop_sampling`: the measured phase only, not the set-up
    (imports, Argon2 logins)."""
    command = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(os.getpid())]
    command += ["--rate", "250", "--format", "raw", "-o", str(raw)]
    sampler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)  # attached
    return sampler


def stop_sampling(sampler: subprocess.Popen[bytes], raw: Path) -> None:
    sampler.send_signal(signal.SIGINT)
    sampler.wait(timeout=30)
    sys.path.insert(0, str(ROOT / "bench"))
    from sampling import summary

    print(summary(raw, top=30), flush=True)


async def measure(
    name: str,
    call: Call,
    requests: int,
    concurrency: int,
    counts: Counts | None,
    raw: Path | None = None,
) -> float:
    for i in range(200):  # warm: prepared statements, pools, caches
        status, body = await call(i % concurrency)
        assert status == 200, body
    queue = iter(range(requests))

    async def lane(index: int) -> None:
        for _ in queue:
            status, body = await call(index)
            assert status == 200, body

    if counts is not None:
        counts.reset()
        counts.enabled = True
    sampler = start_sampling(raw) if raw is not None else None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(lane(i) for i in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_SELF)
    user = (after.ru_utime - usage.ru_utime) / requests * 1e6
    system = (after.ru_stime - usage.ru_stime) / requests * 1e6
    if counts is not None:
        counts.enabled = False
    if sampler is not None and raw is not None:
        stop_sampling(sampler, raw)
    per_request = cpu / requests * 1e6
    print(
        f"{name:36} {per_request:7.0f} µs CPU/request   "
        f"({user:4.0f} user + {system:4.0f} sys)   "
        f"{requests / wall:7.0f} req/s in-process ({concurrency} in flight)",
        flush=True,
    )
    if counts is not None:
        print(counts.report(requests), flush=True)
    return per_request


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--only", choices=["refresh", "client_credentials"])
    parser.add_argument(
        "--floor", action="store_true", help="also GET /jwks.json: auth's stack, no work"
    )
    parser.add_argument("--rounds", type=int, default=1, help="measure each scenario this often")
    parser.add_argument(
        "--count", action="store_true", help="count SQL statements and Redis commands"
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="sample each scenario's measured phase with py-spy into DIR/<scenario>.txt "
        "(raw) and print bench/sampling.py's summary",
    )
    parser.add_argument(
        "--otel", action="store_true", help="with the OpenTelemetry SDK on (bench/run.py: off)"
    )
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    if not args.otel:
        os.environ["OTEL_SDK_DISABLED"] = "true"
    overrides = dict(item.split("=", 1) for item in args.set)

    from asgi_lifespan import LifespanManager

    from auth.app import create_app
    from platform_common.state import platform_state

    url = await fresh_database()
    await clean_redis()
    app = create_app(
        settings(url, signing_keys(), overrides),
        run_outbox=False,
        run_mail_sender=False,
    )
    counts = Counts() if args.count else None
    async with LifespanManager(app) as manager:
        if counts is not None:
            counts.install(platform_state(app).engine)
        auth = Driver(manager.app, BENCH_HEADERS)
        email = "alice@bench.example"
        status, body = await auth.request(
            "POST",
            "/api/v1/auth/register",
            json.dumps({"email": email, "password": PASSWORD, "name": "Alice"}).encode(),
        )
        assert status == 201, body
        login = json.dumps({"email": email, "password": PASSWORD}).encode()
        refresh_tokens: list[str] = []
        for _ in range(args.concurrency):  # one session per lane
            status, body = await auth.request("POST", "/api/v1/auth/login", login)
            assert status == 200, body
            refresh_tokens.append(json.loads(body)["refresh_token"])

        async def refresh(lane: int) -> tuple[int, bytes]:
            body = b'{"refresh_token":"%s"}' % refresh_tokens[lane].encode()
            status, answer = await auth.request("POST", "/api/v1/auth/refresh", body)
            if status == 200:
                refresh_tokens[lane] = json.loads(answer)["refresh_token"]
            return status, answer

        async def client_credentials(lane: int) -> tuple[int, bytes]:
            return await auth.request(
                "POST",
                "/api/v1/auth/token",
                CLIENT_CREDENTIALS_BODY,
                b"application/x-www-form-urlencoded",
            )

        sys.path.insert(0, str(ROOT / "bench"))
        from baseline import create_app as create_bare

        bare = Driver(create_bare(), BENCH_HEADERS)

        async def ping(lane: int) -> tuple[int, bytes]:
            return await bare.request("GET", "/ping")

        async def jwks(lane: int) -> tuple[int, bytes]:
            return await auth.request("GET", "/api/v1/auth/jwks.json")

        calls: list[tuple[str, str, Call]] = [("bare", "bare FastAPI /ping", ping)]
        if args.floor:
            # auth's stack alone (middleware, rate limit, routing): no database, no signature.
            calls.append(("jwks", "auth GET /jwks.json (floor)", jwks))
        if args.only in (None, "refresh"):
            calls.append(("refresh", "auth POST /refresh", refresh))
        if args.only in (None, "client_credentials"):
            calls.append(
                ("client_credentials", "auth POST /token client_credentials", client_credentials)
            )
        if args.py_spy:
            args.py_spy.mkdir(parents=True, exist_ok=True)
        results: dict[str, list[float]] = collections.defaultdict(list)
        for _ in range(args.rounds):
            for short, name, call in calls:
                raw = args.py_spy / f"{short}.txt" if args.py_spy and short != "bare" else None
                results[name].append(
                    await measure(name, call, args.requests, args.concurrency, counts, raw)
                )
        if args.rounds > 1:
            print("medians:")
            for name, figures in results.items():
                figures.sort()
                print(f"  {name:36} {figures[len(figures) // 2]:7.0f} µs CPU/request")


if __name__ == "__main__":
    asyncio.run(main())
