"""Load scenarios: wrk against the real services (gunicorn, the production command) on real
PostgreSQL and Redis, next to a bare FastAPI endpoint served the same way in the same run.

    uv run python bench/run.py [--duration 8] [--rounds 3] [--connections 32]

Every scenario runs once per round, the rounds one after the other, with one gunicorn worker
per service; then the bare endpoint, users and orgs are restarted with two workers each and the
overload scenarios run again. Each figure is the median over the rounds, each ratio the median
of the ratios to the bare endpoint of the same round and configuration.

Needs PostgreSQL and Redis (BENCH_DATABASE_URL, default the local postgres user; BENCH_REDIS_URL,
default redis://127.0.0.1:6379/14) and `wrk` on PATH. Writes bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

# bench/load.py and bench/stack.py: run.py runs as a script, its folder is on sys.path.
import sampling
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from load import Result, Row, Scenario, run, summarise, table
from redis import Redis
from stack import (
    database_url,
    free_port,
    recreate_database,
    request,
    wait_ready,
    worker_rss_mb,
)

from platform_common.revocation import EPOCH_KEY

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
PASSWORD = "benchmark passphrase 2026"
DIRECTORY_SIZE = 100_000
CLIENT_SECRET = "bench-client-secret"
CLIENT_CREDENTIALS_BODY = (
    f"grant_type=client_credentials&client_id=bench&client_secret={CLIENT_SECRET}"
)


APPS = {
    "baseline": "baseline:create_app()",
    "auth": "auth.app:create_app()",
    "users": "users.app:create_app()",
    "orgs": "orgs.app:create_app()",
}


class Stack:
    """The four servers, each the production command (gunicorn with the shared configuration),
    started one at a time so that each start-up time is its own."""

    def __init__(self, tmp: Path, env: dict[str, str], ports: dict[str, int]) -> None:
        self.tmp, self.env, self.ports = tmp, env, ports
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ready_after: dict[str, float] = {}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self, name: str, workers: int) -> None:
        metrics_dir = Path(tempfile.mkdtemp(prefix=f"metrics-{name}-", dir=self.tmp))
        env = {
            **self.env,
            "PORT": str(self.ports[name]),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "WEB_CONCURRENCY": str(workers),
        }
        started = time.monotonic()
        proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "python:platform_common.gunicorn_conf", APPS[name]],
            env=env,
            cwd=ROOT / "bench",
            stdout=subprocess.DEVNULL,
            stderr=open(self.tmp / f"{name}-{workers}w.log", "ab"),
            start_new_session=True,
        )
        self.procs[name] = proc
        wait_ready(self.url(name) + ("/ping" if name == "baseline" else "/readyz"), proc)
        self.ready_after.setdefault(name, time.monotonic() - started)

    def stop(self, *names: str) -> None:
        for name in names or tuple(self.procs):
            proc = self.procs.pop(name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    def worker_pid(self, name: str) -> int:
        master = self.procs[name].pid
        return int(Path(f"/proc/{master}/task/{master}/children").read_text().split()[0])

    def rss(self) -> dict[str, float]:
        return {name: worker_rss_mb(proc.pid) for name, proc in self.procs.items()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=8, help="seconds per scenario")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 round, 1 s per scenario, a small directory: proves the bench runs, measures nothing",
    )
    parser.add_argument(
        "--only",
        type=lambda value: value.split(","),
        help="run only the scenarios whose name contains one of these comma-separated parts "
        "(and the bare endpoint), e.g. --only 'connections,members'",
    )
    parser.add_argument(
        "--profile",
        choices=("auth", "users", "orgs"),
        help="run py-spy on that service's (first) worker during each scenario and write the "
        "functions with the most samples beside the results (bench/results/profile-*.txt)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.md")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds = 1, 1

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
    ports = {name: free_port() for name in APPS}
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

    global STACK
    stack = STACK = Stack(tmp, env, ports)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        for name in APPS:
            stack.start(name, workers=1)
        # Until auth has written the revocation state into the fresh Redis, the services
        # answer authenticated requests 503 (fail closed): wait for it.
        redis = Redis.from_url(REDIS)
        for _ in range(300):
            if redis.exists(EPOCH_KEY):
                break
            time.sleep(0.1)
        token, admin, alice_id = seed_accounts(urls)
        print(
            f"wrk: 2 threads, {args.connections} connections unless said, {args.duration:g} s "
            f"a scenario, {args.rounds} round(s); gunicorn with 1 worker per service",
            flush=True,
        )
        one = rounds(args, lambda: scenarios(urls, token, admin, alice_id, size))
        rss = stack.rss()
        stack.stop("baseline", "users", "orgs")
        for name in ("baseline", "users", "orgs"):
            stack.start(name, workers=2)
        print("the same with 2 gunicorn workers for the bare endpoint, users and orgs", flush=True)
        two = rounds(args, lambda: overload(urls, token, alice_id, workers=2))
    finally:
        stack.stop()

    rows = summarise(one) + summarise(two)
    text = report(args, rows, stack.ready_after, rss)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    print(f"service logs (access log lines with each answer's status): {tmp}")
    return 1 if any(row.errors for row in rows) else 0


def seed_accounts(urls: dict[str, str]) -> tuple[str, str, str]:
    """Alice, the owner of the org `bench` of 20 members, and the admin: their tokens."""
    alice = request(
        "POST",
        f"{urls['auth']}/api/v1/auth/register",
        {"email": "alice@bench.example", "password": PASSWORD, "name": "Alice"},
    )
    token = login(urls, "alice@bench.example")["access_token"]
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
    admin = login(urls, "admin@bench.example")["access_token"]
    return token, admin, alice["id"]


def login(urls: dict[str, str], email: str) -> dict[str, str]:
    return request(
        "POST", f"{urls['auth']}/api/v1/auth/login", {"email": email, "password": PASSWORD}
    )


def rounds(args: argparse.Namespace, make: Callable[[], list[Scenario]]) -> list[list[Result]]:
    """Every scenario once per round; a round's first result is its bare endpoint."""
    results = []
    for number in range(1, args.rounds + 1):
        print(f"round {number}", flush=True)
        chosen = [
            s
            for i, s in enumerate(make())
            if i == 0 or not args.only or any(part in s.name for part in args.only)
        ]
        results.append([measure(args, s) for s in chosen])
    return results


STACK: Stack | None = None


def measure(args: argparse.Namespace, scenario: Scenario) -> Result:
    """One scenario; with --profile, sampled by py-spy on the chosen service's worker."""
    if not args.profile or STACK is None or scenario.name.startswith(BARE):
        return run(scenario, args.duration, args.connections)
    slug = re.sub(r"[^a-z0-9]+", "-", scenario.name.lower()).strip("-")
    raw = STACK.tmp / f"{slug}.raw"
    sampler = sampling.start(STACK.worker_pid(args.profile), args.duration, raw)
    result = run(scenario, args.duration, args.connections)
    sampler.wait()
    out = args.out.parent / f"profile-{args.profile}-{slug}.txt"
    out.write_text(
        f"{scenario.name}: py-spy on the {args.profile} worker\n{sampling.summary(raw)}\n"
    )
    print(f"    profile: {out}", flush=True)
    return result


def scenarios(
    urls: dict[str, str], token: str, admin: str, alice_id: str, size: int
) -> list[Scenario]:
    """One round with one worker per service. Fresh refresh tokens every round: a rotated one
    used again would end its session."""
    bearer = ("-H", f"Authorization: Bearer {token}")
    form = ("-H", "Content-Type: application/x-www-form-urlencoded")
    login_body = {"BENCH_BODY": json.dumps({"email": "alice@bench.example", "password": PASSWORD})}
    refresh_tokens = [login(urls, "alice@bench.example")["refresh_token"] for _ in range(40)]
    s1 = Scenario(
        S1, "S1: JWT (cached) + revocation (Redis) + 1 query", user_url(urls, alice_id), bearer
    )
    flood = Scenario(
        "login flood",
        "",
        f"{urls['auth']}/api/v1/auth/login",
        script="post_body.lua",
        env=login_body,
        connections=16,
    )
    return [
        Scenario(BARE, "baseline: no I/O", f"{urls['baseline']}/ping"),
        s1,
        Scenario(
            ORG,
            "JWT + revocation + the org and the caller's membership",
            f"{urls['orgs']}/api/v1/orgs/bench",
            bearer,
        ),
        Scenario(
            S2,
            "S2: JWT + Redis + DB + HTTP call to orgs (cached in Redis)",
            f"{urls['users']}/api/v1/users/me",
            bearer,
        ),
        Scenario(
            S3, "S3: JWT + Redis + DB + member cards (cached in Redis)", members_url(urls), bearer
        ),
        *overload(urls, token, alice_id, workers=1)[1:],
        Scenario(
            S1_FLOOD, "S1 while 16 connections log in at /login", s1.url, bearer, during=flood
        ),
        Scenario(
            SEARCH,
            f"admin search, {size // 1000}k profiles, substring of email (trigram index)",
            f"{urls['users']}/api/v1/users?q=knuth123&limit=20",
            ("-H", f"Authorization: Bearer {admin}"),
        ),
        Scenario(
            CLIENT_CREDENTIALS,
            "service client: constant-time secret check + ES256 signature",
            f"{urls['auth']}/api/v1/auth/token",
            form,
            env={"BENCH_BODY": CLIENT_CREDENTIALS_BODY},
            script="post_body.lua",
        ),
        Scenario(
            REFRESH,
            "rotation: the old token marked used, a new one stored, ES256 signature",
            f"{urls['auth']}/api/v1/auth/refresh",
            env={"BENCH_REFRESH_TOKENS": ",".join(refresh_tokens)},
            script="refresh.lua",
        ),
        Scenario(
            LOGIN,
            "Argon2id (19 MiB, t=2) + session insert",
            flood.url,
            env=login_body,
            script="post_body.lua",
        ),
    ]


def overload(urls: dict[str, str], token: str, alice_id: str, workers: int) -> list[Scenario]:
    """The bare endpoint, then S1 and S3 at 32 (with 2 workers), 128 and 512 connections."""
    bearer = ("-H", f"Authorization: Bearer {token}")
    suffix = "" if workers == 1 else f" ({workers} workers)"
    loads = [
        Scenario(
            f"{label} at {n} connections{suffix}",
            f"{what}, {n} connections",
            url,
            bearer,
            connections=n,
        )
        for label, what, url in (
            ("S1", "overload", user_url(urls, alice_id)),
            ("S3", "overload", members_url(urls)),
        )
        for n in ((32, 128, 512) if workers > 1 else (128, 512))
    ]
    return [Scenario(f"{BARE}{suffix}", "baseline: no I/O", f"{urls['baseline']}/ping"), *loads]


def user_url(urls: dict[str, str], user_id: str) -> str:
    return f"{urls['users']}/api/v1/users/{user_id}"


def members_url(urls: dict[str, str]) -> str:
    return f"{urls['orgs']}/api/v1/orgs/bench/members"


BARE = "bare FastAPI /ping"
S1 = "users GET /users/{own id}"
ORG = "orgs GET /orgs/{slug}"
S2 = "users GET /me"
S3 = "orgs GET /{slug}/members"
S1_FLOOD = "S1 during a login flood"
SEARCH = "users GET /users?q="
CLIENT_CREDENTIALS = "auth POST /token client_credentials"
REFRESH = "auth POST /refresh"
LOGIN = "auth POST /login"


def report(
    args: argparse.Namespace, rows: list[Row], ready_after: dict[str, float], rss: dict[str, float]
) -> str:
    """The results table and, beside it, each target of the performance issue: met or not."""
    by_name = {row.name: row for row in rows}

    def get(name: str) -> Row | None:
        return by_name.get(name)

    targets: list[tuple[str, str, bool | None]] = []

    def target(label: str, figure: str, met: bool | None) -> None:
        targets.append((label, figure, met))

    if (s1 := get(S1)) is not None:
        target(
            "S1 ≥ 30 % of bare, p99 ≤ 25 ms",
            f"{s1.ratio:.1%}, p99 {s1.p99_ms:.0f} ms",
            s1.ratio >= 0.30 and s1.p99_ms <= 25,
        )
        for name, share, label in ((S2, 0.5, "S2 ≥ 50 % of S1"), (S3, 0.4, "S3 ≥ 40 % of S1")):
            if (row := get(name)) is not None:
                share_of_s1 = row.rps / s1.rps if s1.rps else 0.0
                target(label, f"{share_of_s1:.0%} of S1", share_of_s1 >= share)
        if (flood := get(S1_FLOOD)) is not None:
            target(
                "S1 p99 during a login flood ≤ 3x without",
                f"{flood.p99_ms / max(s1.p99_ms, 0.001):.1f}x ({flood.p99_ms:.0f} vs {s1.p99_ms:.0f} ms)",
                flood.p99_ms <= 3 * s1.p99_ms,
            )
    if (org := get(ORG)) is not None:
        target("GET /orgs/{slug} ≥ 25 % of bare", f"{org.ratio:.1%}", org.ratio >= 0.25)
    for workers in (1, 2):
        suffix = "" if workers == 1 else f" ({workers} workers)"
        for label, base_name in (("S1", S1), ("S3", S3)):
            base = get(base_name if workers == 1 else f"{label} at 32 connections{suffix}")
            for n in (128, 512):
                row = get(f"{label} at {n} connections{suffix}")
                if row is None or base is None:
                    continue
                kept = row.rps / base.rps if base.rps else 0.0
                target(
                    f"{label} at {n} connections, {workers} worker(s): no errors, ≥ 80 % of 32",
                    f"{row.errors} errors, {kept:.0%}",
                    row.errors == 0 and kept >= 0.8,
                )
    for name in (REFRESH, CLIENT_CREDENTIALS):
        if (row := get(name)) is not None:
            target(f"{name} ≥ 15 % of bare", f"{row.ratio:.1%}", row.ratio >= 0.15)
    worst = max(v for k, v in rss.items() if k != "baseline")
    target("worker RSS ≤ 90 MB", ", ".join(f"{k} {v:.0f} MB" for k, v in rss.items()), worst <= 90)
    slowest = max(v for k, v in ready_after.items() if k != "baseline")
    target(
        "process start to /readyz ≤ 2.5 s",
        ", ".join(f"{k} {v:.1f} s" for k, v in ready_after.items()),
        slowest <= 2.5,
    )

    command = f"uv run python bench/run.py --duration {args.duration:g} --rounds {args.rounds} --connections {args.connections}"
    lines = [
        f"# Benchmark results ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"`{command}` on {os.cpu_count()} cores (load average before the run: "
        f"{os.getloadavg()[2]:.2f} over 15 min); wrk on the same machine (2 threads), PostgreSQL "
        "and Redis local. Medians of the rounds; each ratio against the bare endpoint of the "
        "same round and gunicorn configuration; errors summed over the rounds.",
        "",
        *table(rows),
        "",
        "| target | figure | met |",
        "|---|---|---|",
        *(f"| {label} | {figure} | {'yes' if met else 'no'} |" for label, figure, met in targets),
        "",
        "Start: each server alone, process start to its readiness answer (the bare endpoint's /ping).",
        "RSS: each service's worker after the one-worker rounds.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
