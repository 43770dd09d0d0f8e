"""Cross-service fixtures: the platform as real processes, and nginx as its ingress.

```
platform (session)                                  ingress (session)
  backends.create_database x3 (fresh, per service)    deploy/nginx/ingress.conf.template
  <svc>.migrate x3 (auth seeds the platform admin)      rendered with the three ports
  uvicorn --factory <svc>.app:create_app x3           nginx -p <tmp> -c <conf>, daemon off
    each in its own process group, on a free port,    on a free port, log to a file
    log to <tmp>/<svc>.log, /readyz awaited
  stop(name) / start(name): same port, same env, for the failure tests
  finalizer: SIGTERM then SIGKILL to every group, databases dropped
```

A failing test that used the platform gets the tail of every service's log (and nginx's)
as report sections, so a red run says what the processes saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from platform_testing import (  # noqa: F401
    Backends,
    backends,
    free_port,
    spawn,
    stop_process_group,
)
from platform_testing import log_tail as _log_tail
from platform_testing.otlp import OtlpReceiver
from platform_testing.smtp import MailSink

REPO_ROOT = Path(__file__).resolve().parent.parent
INGRESS_TEMPLATE = REPO_ROOT / "deploy" / "nginx" / "ingress.conf.template"
HOST = "127.0.0.1"
SERVICES = ("auth", "users", "orgs")
READY_TIMEOUT = 90.0  # two busy cores, three Python processes importing at once
LOG_TAIL_LINES = 40
E2E_ORIGIN = "https://app.e2e.example"  # the browser front-end the stack allows


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    return _log_tail(path, lines)


# Every running Platform / Ingress, for the failure report hook below.
_RUNNING: list[Any] = []


def redis_url_of_our_own(url: str) -> str:
    """Database 0 of the tests' Redis server, which no unit-test session flushes.

    `backends` hands each xdist worker database 1..15 and the services' unit tests flush it
    between tests; a suite running next to this one would wipe the revocation keys under the
    e2e stack's feet. Unix-socket URLs (the embedded server) are used as they are.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        return url
    return urlunsplit(parts._replace(path="/0"))


@dataclass
class ServiceProcess:
    """One service run by uvicorn; stop() and start() keep its port and environment."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.running, f"{self.name} is already running"
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            f"{self.name}.app:create_app",
            "--host",
            HOST,
            "--port",
            str(self.port),
            # The app logs every request itself, with its request id (as `make up` runs it).
            "--no-access-log",
            # The app reads X-Forwarded-For itself, through *_TRUSTED_PROXIES.
            "--no-proxy-headers",
        ]
        with self.log_path.open("ab") as log:
            log.write(f"--- e2e: starting {self.name} on :{self.port} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                command,
                env=self.env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killpg reaches its children
            )

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)
            with self.log_path.open("ab") as log:
                log.write(f"--- e2e: {self.name} stopped ---\n".encode())

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                code = self.proc.returncode if self.proc else None
                pytest.fail(
                    f"{self.name} exited (code {code}) before it was ready; its log:\n"
                    + tail(self.log_path)
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.1)
        pytest.fail(
            f"{self.name} was not ready within {timeout:g} s; its log:\n" + tail(self.log_path)
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Platform:
    services: dict[str, ServiceProcess]
    admin_email: str
    admin_password: str
    log_dir: Path

    def __getitem__(self, name: str) -> ServiceProcess:
        return self.services[name]

    def url(self, name: str) -> str:
        return self.services[name].url

    def stop(self, name: str) -> None:
        self.services[name].stop()

    def start(self, name: str) -> None:
        self.services[name].start()
        self.services[name].wait_ready()

    def ensure_running(self) -> None:
        """Restart whatever an earlier (perhaps failed) test left stopped."""
        stopped = [s for s in self.services.values() if not s.running]
        for service in stopped:
            service.start()
        for service in stopped:
            service.wait_ready()

    def stop_all(self) -> None:
        # Signal every group first so that the graceful shutdowns overlap.
        for service in self.services.values():
            if service.running:
                assert service.proc is not None
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(service.proc.pid, signal.SIGTERM)
        for service in self.services.values():
            service.stop()

    def report(self) -> list[tuple[str, str]]:
        return [
            (f"{s.name} log (last {LOG_TAIL_LINES} lines)", tail(s.log_path))
            for s in self.services.values()
        ]


def _run_migration(name: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    return spawn([sys.executable, "-m", f"{name}.migrate"], log_path, REPO_ROOT, env)


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """Where the e2e stack exports its traces (OTLP/HTTP), for tests/e2e/test_one_trace.py."""
    receiver = OtlpReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(scope="session")
def mail_sink() -> Iterator[MailSink]:
    """The e2e stack's SMTP server (aiosmtpd): auth and orgs send their mail to it."""
    with MailSink() as sink:
        yield sink


@pytest.fixture(scope="session")
def platform(
    backends: Backends,
    tmp_path_factory: pytest.TempPathFactory,
    otlp_receiver: OtlpReceiver,
    mail_sink: MailSink,
) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("platform")
    ports = {name: free_port() for name in SERVICES}
    urls = {name: f"http://{HOST}:{port}" for name, port in ports.items()}
    redis_url = redis_url_of_our_own(backends.redis_url)
    database_urls = {
        name: asyncio.run(backends.create_database(f"e2e_{name}")) for name in SERVICES
    }
    admin_email = f"admin-{secrets.token_hex(4)}@e2e.example.com"
    admin_password = secrets.token_urlsafe(18)

    base_env = {
        key: value
        for key, value in os.environ.items()
        # Settings the developer's shell may carry must not leak into the stack.
        if not key.startswith(("AUTH_", "USERS_", "ORGS_", "PLATFORM_"))
    }
    base_env.update(
        PYTHONUNBUFFERED="1",
        AUTH_USERS_URL=urls["users"],
        AUTH_ORGS_URL=urls["orgs"],
        USERS_ORGS_URL=urls["orgs"],
        ORGS_USERS_URL=urls["users"],
        AUTH_OUTBOX_POLL_SECONDS="0.2",
        # Login throttling is auth's own tests' business; repeated local runs within a
        # minute would otherwise share the per-address window in Redis.
        AUTH_LOGIN_MAX_ATTEMPTS_PER_IP="1000",
        # Traces to the test's receiver, a batch every 100 ms instead of 5 s.
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
        # Mail over real SMTP to the suite's server.
        AUTH_SMTP_URL=mail_sink.url,
        ORGS_SMTP_URL=mail_sink.url,
        AUTH_MAIL_POLL_SECONDS="0.5",
        AUTH_PASSWORD_FORGOT_MAX_PER_IP="1000",
        ORGS_MAIL_POLL_SECONDS="0.5",
    )
    for name in SERVICES:
        prefix = name.upper()
        data_dir = root / f"{name}-data"
        data_dir.mkdir()
        base_env.update(
            {
                f"{prefix}_DATA_DIR": str(data_dir),
                f"{prefix}_DATABASE_URL": database_urls[name],
                f"{prefix}_REDIS_URL": redis_url,
                f"{prefix}_JWKS_URL": f"{urls['auth']}/api/v1/auth/jwks.json",
                f"{prefix}_JWT_ISSUER": f"{urls['auth']}/api/v1/auth",
                f"{prefix}_REVOCATION_CACHE_SECONDS": "1",
                # nginx, the ingress, is the one proxy in front of them.
                f"{prefix}_TRUSTED_PROXIES": "127.0.0.1/32",
                f"{prefix}_CORS_ORIGINS": E2E_ORIGIN,
                # The limiter runs; the suite's bursts from one address stay under it.
                f"{prefix}_RATE_LIMIT_ANONYMOUS": "100000/minute",
                f"{prefix}_RATE_LIMIT_USER": "100000/minute",
            }
        )

    services = {
        name: ServiceProcess(name, ports[name], dict(base_env), root / f"{name}.log")
        for name in SERVICES
    }
    platform = Platform(services, admin_email, admin_password, root)
    _RUNNING.append(platform)
    try:
        migrations = []
        for name in SERVICES:
            env = dict(base_env)
            if name == "auth":
                env.update(PLATFORM_ADMIN_EMAIL=admin_email, PLATFORM_ADMIN_PASSWORD=admin_password)
            migrations.append((name, _run_migration(name, env, services[name].log_path)))
        for name, proc in migrations:
            if proc.wait(timeout=180) != 0:
                pytest.fail(
                    f"{name}.migrate failed (exit {proc.returncode}):\n"
                    + tail(services[name].log_path)
                )
        for service in services.values():
            service.start()
        for service in services.values():
            service.wait_ready()
        yield platform
    finally:
        platform.stop_all()
        _RUNNING.remove(platform)
        asyncio.run(backends.drop_databases())


@dataclass
class Ingress:
    port: int
    prefix: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def report(self) -> list[tuple[str, str]]:
        return [(f"nginx log (last {LOG_TAIL_LINES} lines)", tail(self.log_path))]


def render_ingress(upstreams: dict[str, str], port: int) -> str:
    """`${NAME}` placeholders, as envsubst fills them (nginx's own `$vars` stay as they are)."""
    values = {
        "INGRESS_LISTEN": f"{HOST}:{port}",
        "AUTH_UPSTREAM": upstreams["auth"],
        "USERS_UPSTREAM": upstreams["users"],
        "ORGS_UPSTREAM": upstreams["orgs"],
    }
    text = INGRESS_TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    config_lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    leftover = re.findall(r"\$\{[A-Z_]+\}", "\n".join(config_lines))
    assert not leftover, f"unrendered placeholders in {INGRESS_TEMPLATE}: {leftover}"
    return text


def find_nginx() -> str:
    found = os.environ.get("NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(found).is_file():
        pytest.fail("nginx is not installed: `apt-get install nginx-light` (or set NGINX)")
    return found


@pytest.fixture(scope="session")
def ingress(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingress]:
    nginx = find_nginx()
    prefix = tmp_path_factory.mktemp("nginx")
    port = free_port()
    upstreams = {name: f"{HOST}:{platform[name].port}" for name in SERVICES}
    conf = prefix / "nginx.conf"
    conf.write_text(render_ingress(upstreams, port))
    directives = f"daemon off; pid {prefix / 'nginx.pid'}; error_log stderr;"
    if os.geteuid() == 0:
        # As root, workers would otherwise run as `nobody`, which cannot enter pytest's
        # 0700 temporary folder where the request-body buffers live.
        directives += " user root;"
    ingress = Ingress(port, prefix, prefix / "nginx.log")
    check = subprocess.run(
        [nginx, "-t", "-e", "stderr", "-p", str(prefix), "-c", str(conf), "-g", directives],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, f"nginx -t rejected the rendered ingress:\n{check.stderr}"
    with ingress.log_path.open("ab") as log:
        ingress.proc = subprocess.Popen(
            [nginx, "-e", "stderr", "-p", str(prefix), "-c", str(conf), "-g", directives],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _RUNNING.append(ingress)
    try:
        deadline = time.monotonic() + 15
        while True:
            if ingress.proc.poll() is not None:
                pytest.fail(
                    f"nginx exited (code {ingress.proc.returncode}):\n{tail(ingress.log_path)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if (
                    httpx.get(f"{ingress.url}/api/v1/auth/jwks.json", timeout=1.0).status_code
                    == 200
                ):
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"nginx did not answer within 15 s:\n{tail(ingress.log_path)}")
            time.sleep(0.1)
        yield ingress
    finally:
        stop_process_group(ingress.proc)
        _RUNNING.remove(ingress)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and "platform" in getattr(item, "fixturenames", ()):
        for running in list(_RUNNING):
            for title, text in running.report():
                report.sections.append((title, text))
