"""Load scenarios: wrk against the real services (gunicorn, the production command) on real
PostgreSQL and Redis, next to a bare FastAPI endpoint served the same way in the same run.

    uv run python bench/run.py [--duration 10] [--connections 32] [--workers 1]

Needs PostgreSQL and Redis (BENCH_DATABASE_URL, default the local postgres user; BENCH_REDIS_URL,
default redis://127.0.0.1:6379/14) and `wrk` on PATH. Writes bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DB = os.environ.get("BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
PASSWORD = "benchmark passphrase 2026"
DIRECTORY_SIZE = 100_000
DIRECTORY_SEED = f"""
-- Varied names and addresses (first name, last name, a number, one of a few domains), so
-- that trigram selectivity is like a real directory's rather than every row sharing a word.
WITH first(n, v) AS (SELECT row_number() OVER (), v FROM unnest(ARRAY['ada','alan','grace',
       'linus','margaret','dennis','barbara','ken','frances','edsger','radia','tim','hedy',
       'john','katherine','donald','sophie','guido','anita','niklaus']) AS v),
     last(n, v) AS (SELECT row_number() OVER (), v FROM unnest(ARRAY['lovelace','turing',
       'hopper','torvalds','hamilton','ritchie','liskov','thompson','allen','dijkstra',
       'perlman','berners-lee','lamarr','mccarthy','johnson','knuth','wilson','rossum',
       'borg','wirth','kay','lamport','shamir','diffie','hellman','cerf','kahn']) AS v)
INSERT INTO profiles (id, email, name, role, is_active, source_version, created_at, updated_at)
SELECT gen_random_uuid(),
       f.v || '.' || l.v || i || '@' || (ARRAY['example.com','mail.example','corp.example'])[1 + i % 3],
       initcap(f.v) || ' ' || initcap(l.v) || ' ' || i,
       'user', i % 10 <> 0, 0, now() - make_interval(secs => i), now()
FROM generate_series(1, {DIRECTORY_SIZE}) AS i
JOIN first f ON f.n = 1 + i % 20
JOIN last l ON l.n = 1 + (i / 20) % 27;
ANALYZE profiles;
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url(name: str) -> str:
    base, _, _ = DB.rpartition("/")
    return f"{base}/{name}"


def recreate_database(name: str) -> None:
    admin = DB.replace("postgresql+asyncpg://", "postgresql://")
    for sql in (f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'):
        subprocess.run(["psql", admin, "-qc", sql], check=True)


def request(method: str, url: str, body: dict | None = None, token: str | None = None) -> dict:  # type: ignore[type-arg]
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as response:
        text = response.read()
        return json.loads(text) if text else {}


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited while starting: {url}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"not ready: {url}")


@dataclass
class Result:
    name: str
    what: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


def wrk(
    name: str,
    what: str,
    url: str,
    args: argparse.Namespace,
    *extra: str,
    env: dict[str, str] | None = None,
) -> Result:
    command = [
        "wrk",
        "-t",
        "2",
        "-c",
        str(args.connections),
        "-d",
        f"{args.duration}s",
        "--latency",
        "--timeout",
        "5s",
        *extra,
        url,
    ]
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, env={**os.environ, **(env or {})}
    ).stdout

    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(g) for g in sock.groups()) if sock else 0
    )
    result = Result(name, what, rps, latency("50"), latency("99"), errors, total)
    print(
        f"  {name:<28} {rps:>9.0f} req/s  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:7.2f} ms  errors {errors}",
        flush=True,
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers per service")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    keys = tmp / "keys"
    keys.mkdir()
    (keys / "current.pem").write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ports = {name: free_port() for name in ("baseline", "auth", "users", "orgs")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    env = dict(os.environ)
    for name in ("auth", "users", "orgs"):
        prefix = name.upper()
        recreate_database(f"bench_{name}")
        env.update(
            {
                f"{prefix}_ENVIRONMENT": "production",
                f"{prefix}_DATABASE_URL": database_url(f"bench_{name}"),
                f"{prefix}_REDIS_URL": REDIS,
                f"{prefix}_JWKS_URL": f"{urls['auth']}/api/v1/auth/jwks.json",
                f"{prefix}_JWT_ISSUER": f"{urls['auth']}/api/v1/auth",
            }
        )
    env.update(
        {
            "AUTH_SIGNING_KEYS_DIR": str(keys),
            "AUTH_USERS_URL": urls["users"],
            "USERS_ORGS_URL": urls["orgs"],
            "ORGS_USERS_URL": urls["users"],
            # The benchmark logs in one account many times from one address.
            "AUTH_LOGIN_MAX_ATTEMPTS_PER_IP": "100000000",
            "WEB_CONCURRENCY": str(args.workers),
            "OTEL_SDK_DISABLED": "true",
        }
    )
    subprocess.run(["redis-cli", "-u", REDIS, "flushdb"], check=True, capture_output=True)
    admin_env = {
        **env,
        "PLATFORM_ADMIN_EMAIL": "admin@bench.example",
        "PLATFORM_ADMIN_PASSWORD": PASSWORD,
    }
    for name in ("auth", "users", "orgs"):
        subprocess.run(
            [str(BIN / f"{name}-migrate")], env=admin_env, check=True, capture_output=True
        )
    # The directory at 100k profiles, for the admin search scenario.
    users_db = database_url("bench_users").replace("postgresql+asyncpg://", "postgresql://")
    subprocess.run(["psql", users_db, "-qc", DIRECTORY_SEED], check=True)

    procs: list[subprocess.Popen[bytes]] = []
    apps = {
        "baseline": "baseline:create_app()",
        "auth": "auth.app:create_app()",
        "users": "users.app:create_app()",
        "orgs": "orgs.app:create_app()",
    }
    try:
        for name, app in apps.items():
            metrics_dir = tmp / f"metrics-{name}"
            metrics_dir.mkdir()
            proc_env = {
                **env,
                "PORT": str(ports[name]),
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            }
            procs.append(
                subprocess.Popen(
                    [str(BIN / "gunicorn"), "-c", "python:platform_common.gunicorn_conf", app],
                    env=proc_env,
                    cwd=ROOT / "bench",
                    stdout=subprocess.DEVNULL,
                    stderr=open(tmp / f"{name}.log", "wb"),
                    start_new_session=True,
                )
            )
        for name, proc in zip(apps, procs, strict=True):
            wait_ready(urls[name] + ("/ping" if name == "baseline" else "/readyz"), proc)

        alice = request(
            "POST",
            f"{urls['auth']}/api/v1/auth/register",
            {"email": "alice@bench.example", "password": PASSWORD, "name": "Alice"},
        )
        token = request(
            "POST",
            f"{urls['auth']}/api/v1/auth/login",
            {"email": "alice@bench.example", "password": PASSWORD},
        )["access_token"]
        request("POST", f"{urls['orgs']}/api/v1/orgs", {"name": "Bench", "slug": "bench"}, token)
        for i in range(19):
            member = request(
                "POST",
                f"{urls['auth']}/api/v1/auth/register",
                {"email": f"m{i}@bench.example", "password": PASSWORD, "name": f"M{i}"},
            )
            for attempt in range(50):  # users learns of the new account through auth's outbox
                try:
                    request(
                        "POST",
                        f"{urls['orgs']}/api/v1/orgs/bench/members",
                        {"user_id": member["id"], "role": "member"},
                        token,
                    )
                    break
                except urllib.error.HTTPError as exc:
                    if exc.code != 404 or attempt == 49:
                        raise
                    time.sleep(0.1)
        assert alice["id"]
        auth_header = ("-H", f"Authorization: Bearer {token}")
        admin = request(
            "POST",
            f"{urls['auth']}/api/v1/auth/login",
            {"email": "admin@bench.example", "password": PASSWORD},
        )["access_token"]
        admin_header = ("-H", f"Authorization: Bearer {admin}")

        print(
            f"wrk: 2 threads, {args.connections} connections, {args.duration} s each; "
            f"gunicorn with {args.workers} worker(s) per service",
            flush=True,
        )
        results = [
            wrk("bare FastAPI /ping", "baseline: no I/O", f"{urls['baseline']}/ping", args),
            wrk(
                "auth GET /jwks.json",
                "no I/O, the shared middleware stack",
                f"{urls['auth']}/api/v1/auth/jwks.json",
                args,
            ),
            wrk(
                "orgs GET /orgs/{slug}",
                "JWT verify + revocation check (Redis) + 3 queries",
                f"{urls['orgs']}/api/v1/orgs/bench",
                args,
                *auth_header,
            ),
            wrk(
                "users GET /me",
                "JWT + Redis + DB + HTTP call to orgs",
                f"{urls['users']}/api/v1/users/me",
                args,
                *auth_header,
            ),
            wrk(
                "orgs GET /{slug}/members",
                "JWT + Redis + DB + one batched call to users (20 members)",
                f"{urls['orgs']}/api/v1/orgs/bench/members",
                args,
                *auth_header,
            ),
            wrk(
                "users GET /users?q= (100k)",
                f"admin search, {DIRECTORY_SIZE // 1000}k profiles, substring of email (trigram index)",
                f"{urls['users']}/api/v1/users?q=knuth123&limit=20",
                args,
                *admin_header,
            ),
            wrk(
                "users GET /users?is_active=false",
                f"admin list, {DIRECTORY_SIZE // 1000}k profiles, page 50",
                f"{urls['users']}/api/v1/users?is_active=false&page=50&limit=20",
                args,
                *admin_header,
            ),
            wrk(
                "auth POST /login",
                "Argon2id (19 MiB, t=2) + session insert",
                f"{urls['auth']}/api/v1/auth/login",
                args,
                "-s",
                str(ROOT / "bench" / "login.lua"),
                env={
                    "BENCH_LOGIN_BODY": json.dumps(
                        {"email": "alice@bench.example", "password": PASSWORD}
                    )
                },
            ),
        ]
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    baseline = results[0].rps
    lines = [
        f"# Benchmark results ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"`uv run python bench/run.py --duration {args.duration} --connections {args.connections} --workers {args.workers}`"
        f" on {os.cpu_count()} cores; wrk on the same machine (2 threads), PostgreSQL and Redis local.",
        "",
        "| scenario | what it does | req/s | vs bare FastAPI | p50 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.what} | {r.rps:.0f} | {r.rps / baseline:.0%} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.errors} |"
        )
    out = ROOT / "bench" / "results" / "latest.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
