"""Load scenarios: wrk against the real services (gunicorn, the production command) on real
PostgreSQL and Redis, next to a bare FastAPI endpoint served the same way in the same run.

    uv run python bench/run.py [--duration 10] [--connections 32] [--workers 1]

Needs PostgreSQL and Redis (BENCH_DATABASE_URL, default the local postgres user; BENCH_REDIS_URL,
default redis://127.0.0.1:6379/14) and `wrk` on PATH. Writes bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# bench/load.py and bench/stack.py: run.py runs as a script, its folder is on sys.path.
from load import write_table, wrk
from redis import Redis
from stack import (
    database_url,
    free_port,
    recreate_database,
    request,
    wait_ready,
    worker_rss_mb,
)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
PASSWORD = "benchmark passphrase 2026"
DIRECTORY_SIZE = 100_000
CLIENT_SECRET = "bench-client-secret"
CLIENT_CREDENTIALS_BODY = (
    f"grant_type=client_credentials&client_id=bench&client_secret={CLIENT_SECRET}"
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers per service")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 s per scenario and a small directory: proves the bench runs, measures nothing",
    )
    parser.add_argument(
        "--only",
        type=lambda value: value.split(","),
        help="run only the scenarios whose name contains one of these comma-separated parts "
        "(and the bare endpoint), e.g. --only 'connections,members'",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.md")
    args = parser.parse_args()
    if args.quick:
        args.duration = 1

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
            # wrk logs in to one account from 32 connections at once: attempts in flight
            # count in its pool (auth.throttle), which would answer most of them 429.
            "AUTH_LOGIN_MAX_FAILURES_PER_ACCOUNT": "100000000",
            # The limiter runs on every request (its Redis call is part of what is measured)
            # but never trips: wrk is one caller at thousands of requests a second.
            **{
                f"{service}_RATE_LIMIT_{role}": "100000000/minute"
                for service in ("AUTH", "USERS", "ORGS")
                for role in ("ANONYMOUS", "USER", "ADMIN", "SERVICE")
            },
            "WEB_CONCURRENCY": str(args.workers),
            "OTEL_SDK_DISABLED": "true",
            "AUTH_SERVICE_CLIENTS": json.dumps(
                {
                    "bench": {
                        "secret_sha256": hashlib.sha256(CLIENT_SECRET.encode()).hexdigest(),
                        "scopes": ["users:read"],
                    }
                }
            ),
        }
    )
    Redis.from_url(REDIS).flushdb()
    admin_env = {
        **env,
        "PLATFORM_ADMIN_EMAIL": "admin@bench.example",
        "PLATFORM_ADMIN_PASSWORD": PASSWORD,
    }
    for name in ("auth", "users", "orgs"):
        subprocess.run(
            [str(BIN / f"{name}-migrate")], env=admin_env, check=True, capture_output=True
        )
    # The directory (100k profiles; 1k in --quick), for the admin search scenarios.
    users_db = database_url("bench_users").replace("postgresql+asyncpg://", "postgresql://")
    seed = ROOT / "bench" / "directory_seed.sql"
    size = 1_000 if args.quick else DIRECTORY_SIZE
    subprocess.run(["psql", users_db, "-q", "-v", f"size={size}", "-f", str(seed)], check=True)

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
        started_at = time.monotonic()
        ready_after = {}
        for name, proc in zip(apps, procs, strict=True):
            wait_ready(urls[name] + ("/ping" if name == "baseline" else "/readyz"), proc)
            ready_after[name] = time.monotonic() - started_at

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
        users_me = f"{urls['users']}/api/v1/users/{alice['id']}"
        s1 = ("users GET /users/{own id}", "S1: JWT (cached) + revocation (Redis) + 1 query")
        secret = ("-H", "Content-Type: application/x-www-form-urlencoded")
        ran = [
            wrk("bare FastAPI /ping", "baseline: no I/O", f"{urls['baseline']}/ping", args),
            wrk(*s1, users_me, args, *auth_header),
            wrk(
                "orgs GET /orgs/{slug}",
                "JWT + revocation + the org and the caller's membership",
                f"{urls['orgs']}/api/v1/orgs/bench",
                args,
                *auth_header,
            ),
            wrk(
                "users GET /me",
                "S2: JWT + Redis + DB + HTTP call to orgs",
                f"{urls['users']}/api/v1/users/me",
                args,
                *auth_header,
            ),
            wrk(
                "orgs GET /{slug}/members",
                "S3: JWT + Redis + DB + one batched call to users (20 members)",
                f"{urls['orgs']}/api/v1/orgs/bench/members",
                args,
                *auth_header,
            ),
            *(
                wrk(
                    f"S1 at {n} connections",
                    "overload: queueing, not failing",
                    users_me,
                    argparse.Namespace(**{**vars(args), "connections": n}),
                    *auth_header,
                )
                for n in (128, 512)
            ),
            wrk(
                "users GET /users?q=",
                f"admin search, {size // 1000}k profiles, substring of email (trigram index)",
                f"{urls['users']}/api/v1/users?q=knuth123&limit=20",
                args,
                *admin_header,
            ),
            wrk(
                "auth POST /token client_credentials",
                "service client: constant-time secret check + ES256 signature",
                f"{urls['auth']}/api/v1/auth/token",
                args,
                *secret,
                "-s",
                str(ROOT / "bench" / "post_body.lua"),
                env={"BENCH_BODY": CLIENT_CREDENTIALS_BODY},
            ),
            wrk(
                "auth POST /login",
                "Argon2id (19 MiB, t=2) + session insert",
                f"{urls['auth']}/api/v1/auth/login",
                args,
                "-s",
                str(ROOT / "bench" / "post_body.lua"),
                env={
                    "BENCH_BODY": json.dumps({"email": "alice@bench.example", "password": PASSWORD})
                },
            ),
        ]
        results = [result for result in ran if result is not None]
        rss = {name: worker_rss_mb(proc.pid) for name, proc in zip(apps, procs, strict=True)}
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    notes = [
        "Start (process start to /readyz 200, the four started at once): "
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in ready_after.items()),
        "RSS of each worker after the runs: "
        + ", ".join(f"{name} {mb:.0f} MB" for name, mb in rss.items()),
    ]
    print(write_table(results, args, notes))
    print(f"service logs (access log lines with each answer's status): {tmp}")
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
