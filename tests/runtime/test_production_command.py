"""The auth image's production command, run as the image runs it (see conftest.py).

- the venv holds the built wheels, not an editable path into the repository, and
  `auth-migrate` (which the chart's Job runs with the image's ENV but no writable
  /run/prometheus) writes nothing into PROMETHEUS_MULTIPROC_DIR;
- /livez, /readyz, register, login and an authenticated call through gunicorn's two workers;
- /metrics sums the requests both workers served, whichever worker answers the scrape;
- a real Prometheus scrapes it;
- SIGTERM under load: requests already accepted complete, no response is an error, the
  master exits 0 well within graceful_timeout, and a restart drops the last run's samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from .conftest import (
    HOST,
    REPO_ROOT,
    Gunicorn,
    Production,
    find_tool,
    free_port,
    spawn,
    stop_process_group,
    tail,
)

pytestmark = pytest.mark.slow

JWKS = "/api/v1/auth/jwks.json"
REGISTER = "/api/v1/auth/register"
LOAD_BEFORE_SIGTERM = 100  # requests served before the SIGTERM is sent
NO_SUCH_PID = 4_194_305  # above Linux's PID_MAX_LIMIT: no live process has it


def jwks_samples(samples: list[tuple[str, dict[str, str], float]], name: str) -> float:
    return sum(
        value
        for sample, labels, value in samples
        if sample == name and labels.get("handler") == JWKS
    )


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def scrape(server: Gunicorn) -> list[tuple[str, dict[str, str], float]]:
    # A new connection per scrape, so that successive scrapes land on either worker.
    response = httpx.get(f"{server.url}/metrics", headers={"Connection": "close"}, timeout=10)
    assert response.status_code == 200, response.text
    return parse(response.text)


def served_by_pid(server: Gunicorn) -> dict[int, float]:
    """GET /jwks.json counted in each worker's own counter file."""
    counts = {}
    for path in server.multiproc_dir.glob("counter_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        samples = [
            (s.name, s.labels, s.value)
            for metric in MultiProcessCollector.merge([str(path)], accumulate=True)
            for s in metric.samples
        ]
        counts[pid] = jwks_samples(samples, "http_requests_total")
    return counts


async def fire(url: str, count: int, concurrency: int = 8) -> None:
    """`count` GETs, `concurrency` at a time, each on a new connection (spread over workers)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one() -> None:
            response = await client.get(url)
            assert response.status_code == 200, response.text

        await asyncio.gather(*(one() for _ in range(count)))


def test_venv_is_the_built_wheels_not_the_workspace(production: Production) -> None:
    python = production.venv / "bin" / "python"
    result = subprocess.run(
        [str(python), "-c", "import auth, platform_common; print(auth.__file__); "
         "print(platform_common.__file__)"],
        env=production.container_env(),
        cwd=production.root / "app",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    site_packages = next((production.venv / "lib").glob("python3.*/site-packages"))
    for module_file in result.stdout.split():
        assert Path(module_file).is_relative_to(site_packages), module_file
    # An editable install would leave a .pth file pointing into the repository.
    for pth in site_packages.glob("*.pth"):
        assert str(REPO_ROOT) not in pth.read_text(), f"{pth} points into the repository"
    # The migration Job gets PROMETHEUS_MULTIPROC_DIR from the image but no writable mount
    # there (the root filesystem is read-only): it must not write metric files.
    assert "platform admin" in production.migrate_log.read_text()
    assert list(production.migrate_multiproc_dir.iterdir()) == [], tail(production.migrate_log)


def test_health_register_login_through_two_workers(auth_server: Gunicorn) -> None:
    assert len(auth_server.worker_pids()) == 2
    # Each worker froze its start-up heap (gunicorn_conf.post_worker_init).
    frozen = re.findall(r"froze (\d+) start-up objects", auth_server.log_text())
    assert len(frozen) >= 2 and all(int(n) > 100_000 for n in frozen), auth_server.log_tail()
    # And what the lifespan built, once started (platform_common.app).
    more = re.findall(r"froze (\d+) more objects once started", auth_server.log_text())
    assert len(more) >= 2 and all(int(n) > 0 for n in more), auth_server.log_tail()
    base = auth_server.url
    with httpx.Client(base_url=base, timeout=30) as client:
        assert client.get("/livez").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        # The worker class announces nothing about the server it runs.
        assert "server" not in ready.headers

        before = scrape(auth_server)
        email = f"runtime-{secrets.token_hex(4)}@example.com"
        password = secrets.token_urlsafe(16)
        created = client.post(REGISTER, json={"email": email, "password": password, "name": "R"})
        assert created.status_code == 201, created.text
        login = client.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
    # Fresh connections: the token minted by one worker is accepted by whichever answers.
    for _ in range(4):
        sessions = httpx.get(
            f"{base}/api/v1/auth/sessions",
            headers={"Authorization": f"Bearer {token}", "Connection": "close"},
            timeout=30,
        )
        assert sessions.status_code == 200, sessions.text
        assert sessions.json()["total"] == 1

    # auth's own counter lives in the app's registry: it is in the multiprocess files too.
    def successes(samples: list[tuple[str, dict[str, str], float]]) -> float:
        return sum(
            value
            for name, labels, value in samples
            if name == "auth_login_attempts_total" and labels.get("outcome") == "success"
        )

    for _ in range(4):
        assert successes(scrape(auth_server)) == successes(before) + 1


async def test_metrics_count_requests_of_both_workers(auth_server: Gunicorn) -> None:
    workers = auth_server.worker_pids()
    assert len(workers) == 2
    before_total = jwks_samples(await asyncio.to_thread(scrape, auth_server), "http_requests_total")
    before = served_by_pid(auth_server)

    sent = 0
    served: dict[int, float] = {}
    # Which worker accepts a connection is the kernel's choice: a few more batches if one
    # worker happened to take them all.
    for _ in range(3):
        await fire(f"{auth_server.url}{JWKS}", 200)
        sent += 200
        served = {
            pid: count - before.get(pid, 0)
            for pid, count in served_by_pid(auth_server).items()
            if count - before.get(pid, 0) > 0
        }
        if len(served) == 2:
            break
    assert set(served) == workers, f"requests served by {served}, workers are {workers}"
    # The counter is incremented after the response is sent: allow it a moment to land.
    deadline = time.monotonic() + 5
    while sum(served_by_pid(auth_server).values()) < before_total + sent:
        assert time.monotonic() < deadline, served_by_pid(auth_server)
        await asyncio.sleep(0.05)

    for _ in range(8):
        samples = await asyncio.to_thread(scrape, auth_server)
        assert jwks_samples(samples, "http_requests_total") == before_total + sent
        assert jwks_samples(samples, "http_request_duration_seconds_count") >= sent


def test_production_logs_are_json_lines(auth_server: Gunicorn) -> None:
    """In production every app log line is one JSON object a collector can index."""
    request_id = f"runtime-{secrets.token_hex(6)}"
    response = httpx.get(
        f"{auth_server.url}/api/v1/auth/jwks.json", headers={"X-Request-ID": request_id}
    )
    assert response.status_code == 200

    def access_entry() -> dict[str, Any] | None:
        for line in auth_server.log_text().splitlines():
            if request_id in line:
                entry: dict[str, Any] = json.loads(line)  # the whole line, nothing around it
                return entry
        return None

    deadline = time.monotonic() + 5
    while (entry := access_entry()) is None:
        assert time.monotonic() < deadline, auth_server.log_tail()
        time.sleep(0.1)
    assert entry["service"] == "auth"
    assert entry["level"] == "INFO"
    assert entry["request_id"] == request_id
    assert "/api/v1/auth/jwks.json" in entry["message"]
    # A span exists for every request, exported or not: its ids are in the line.
    assert len(entry["trace_id"]) == 32 and len(entry["span_id"]) == 16


async def test_pool_gauges_sum_the_live_workers(auth_server: Gunicorn) -> None:
    """The platform's gauges in multiprocess mode (`livesum`): a pod's figure is its workers'
    sum, whichever worker answers the scrape."""
    await fire(f"{auth_server.url}{JWKS}", 20)
    pool_size = 10  # AUTH_DB_POOL_SIZE's default
    for _ in range(4):
        samples = await asyncio.to_thread(scrape, auth_server)
        sizes = [value for name, _, value in samples if name == "db_pool_size"]
        assert sizes == [auth_server.workers * pool_size], sizes
        # Between requests only the background tasks hold one each, briefly: the outbox
        # relay, the revocation keeper, the event relay and the mail sender.
        (in_use,) = [value for name, _, value in samples if name == "db_pool_connections_in_use"]
        assert 0 <= in_use <= 4 * auth_server.workers
        peers = {
            labels["outcome"]
            for name, labels, _ in samples
            if name == "peer_request_duration_seconds_count" and labels.get("peer") == "users"
        }
        assert peers >= {"ok", "unreachable"}, peers


@pytest.fixture
def prometheus(auth_server: Gunicorn, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Prometheus scraping the server every second; (its URL, its log)."""
    binary = find_tool(
        "prometheus", "install it with `apt-get install prometheus`", env_var="PROMETHEUS"
    )
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: auth\n"
        "    static_configs:\n"
        f"      - targets: ['{HOST}:{auth_server.port}']\n"
    )
    log_path = tmp_path / "prometheus.log"
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address={HOST}:{port}",
        "--log.level=warn",
    ]
    proc = spawn(command, log_path, tmp_path)
    try:
        yield f"http://{HOST}:{port}", log_path
    finally:
        stop_process_group(proc)


async def test_prometheus_scrapes_the_workers(
    auth_server: Gunicorn, prometheus: tuple[str, Path]
) -> None:
    url, log_path = prometheus
    await fire(f"{auth_server.url}{JWKS}", 20)

    async def query(client: httpx.AsyncClient, promql: str) -> float | None:
        response = await client.get(f"{url}/api/v1/query", params={"query": promql})
        result = response.json()["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    deadline = time.monotonic() + 20
    up = total = None
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                up = await query(client, 'up{job="auth"}')
                total = await query(client, f'sum(http_requests_total{{handler="{JWKS}"}})')
            except httpx.TransportError:
                pass  # prometheus is still starting
            if up == 1 and total is not None and total >= 20:
                break
            await asyncio.sleep(0.5)
    assert up == 1, f"up{{job='auth'}} = {up}; prometheus log:\n{tail(log_path)}"
    assert total is not None and total >= 20, f"sum(http_requests_total) = {total}"


@dataclass
class Outcome:
    started: float
    status: int | None
    error: str | None = None
    # When a connection attempt was refused: the server never accepted that request.
    refused_at: float | None = None


async def test_sigterm_under_load_drains_accepted_requests(
    production: Production, auth_server: Gunicorn
) -> None:
    graceful_timeout = 20
    server = Gunicorn(production, "sigterm")
    server.env["GUNICORN_GRACEFUL_TIMEOUT"] = str(graceful_timeout)
    # Samples a previous run of the container left behind (a restarted pod keeps its
    # emptyDir): the master must drop them, or the counters would jump on restart.
    await fire(f"{auth_server.url}{JWKS}", 5)
    for index, stale in enumerate(auth_server.multiproc_dir.glob("*.db")):
        kind = stale.stem.rsplit("_", 1)[0]
        shutil.copy(stale, server.multiproc_dir / f"{kind}_{NO_SUCH_PID + index}.db")
    assert list(server.multiproc_dir.iterdir())
    try:
        await asyncio.to_thread(server.start)
        await asyncio.to_thread(server.wait_ready)
        assert jwks_samples(await asyncio.to_thread(scrape, server), "http_requests_total") == 0
        assert server.proc is not None
        master = server.proc.pid
        workers = server.worker_pids()

        fast: list[Outcome] = []
        slow: list[Outcome] = []
        release = asyncio.Event()
        load_flowing = asyncio.Event()
        signalled = float("inf")

        async def hammer(client: httpx.AsyncClient) -> None:
            """GET /jwks.json in a loop until 2 s after the SIGTERM."""
            while time.monotonic() < signalled + 2.0:
                started = time.monotonic()
                try:
                    response = await client.get(JWKS)
                    fast.append(Outcome(started, response.status_code))
                    if len(fast) >= LOAD_BEFORE_SIGTERM:
                        load_flowing.set()
                except httpx.ConnectError as exc:
                    fast.append(Outcome(started, None, repr(exc), refused_at=time.monotonic()))
                    await asyncio.sleep(0.02)  # refused after shutdown: do not spin
                except httpx.TransportError as exc:
                    fast.append(Outcome(started, None, repr(exc)))

        async def register_slowly(client: httpx.AsyncClient, index: int) -> None:
            """A request the worker has accepted (headers read) whose body arrives after
            the SIGTERM: graceful shutdown must let it finish."""
            body = (
                f'{{"email": "drain-{index}-{secrets.token_hex(3)}@example.com", '
                f'"password": "{secrets.token_urlsafe(16)}", "name": "Drain"}}'
            ).encode()

            async def content() -> AsyncIterator[bytes]:
                yield body[:10]
                await release.wait()
                yield body[10:]

            started = time.monotonic()
            try:
                response = await client.post(
                    REGISTER, content=content(), headers={"Content-Type": "application/json"}
                )
                slow.append(Outcome(started, response.status_code, response.text))
            except httpx.TransportError as exc:
                slow.append(Outcome(started, None, repr(exc)))

        async def terminate() -> None:
            """SIGTERM once the load is flowing (by progress, not a clock: the machine may
            be busy), then let the slow requests send the rest of their bodies."""
            nonlocal signalled
            started = time.monotonic()
            with contextlib.suppress(TimeoutError):  # the count is asserted below
                await asyncio.wait_for(load_flowing.wait(), timeout=30)
            # The slow requests' headers have long reached the workers.
            await asyncio.sleep(max(0.0, started + 1.0 - time.monotonic()))
            signalled = time.monotonic()
            os.kill(master, signal.SIGTERM)
            await asyncio.sleep(0.5)
            release.set()

        # Clients are made up front: building one (its TLS context) blocks the event loop.
        limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
        async with contextlib.AsyncExitStack() as stack:
            loader = await stack.enter_async_context(
                httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30)
            )
            slow_clients = [
                await stack.enter_async_context(httpx.AsyncClient(base_url=server.url, timeout=30))
                for _ in range(3)
            ]
            await asyncio.gather(
                terminate(),
                *(register_slowly(c, i) for i, c in enumerate(slow_clients)),
                *(hammer(loader) for _ in range(8)),
            )
        try:
            code = await asyncio.to_thread(server.proc.wait, graceful_timeout + 10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"gunicorn still running after SIGTERM:\n{server.log_tail()}")
        exited_after = time.monotonic() - signalled
    finally:
        await asyncio.to_thread(server.stop)

    log = server.log_text()
    assert code == 0, f"gunicorn exited {code}:\n{server.log_tail()}"
    assert exited_after < graceful_timeout, f"took {exited_after:.1f} s:\n{server.log_tail()}"
    assert "SIGKILL" not in log, server.log_tail()

    # The requests in flight at the SIGTERM completed.
    assert [o.status for o in slow] == [201, 201, 201], [(o.status, o.error) for o in slow]
    # No request got an error response; after the SIGTERM refused connections are expected.
    answered = [o for o in fast if o.status is not None]
    assert all(o.status == 200 for o in answered), {o.status for o in answered}
    before = [o for o in fast if o.started < signalled - 0.25]
    assert len(before) >= LOAD_BEFORE_SIGTERM // 2, f"only {len(before)} requests before it"
    # A request started before the signal may still have been waiting for a connection on the
    # busy event loop, and be refused once the listener has closed: never accepted, so not a
    # failed request. A refusal before the signal, or any other error, is a failure.
    failed_before = [
        o.error
        for o in before
        if o.status != 200 and (o.refused_at is None or o.refused_at < signalled)
    ]
    assert not failed_before, failed_before[:5]
    # A request sent on a keep-alive connection in the instant the worker closes it as idle
    # (the last ~250 ms before the signal) may be reset: that is the race the pod's preStop
    # sleep covers, not something gunicorn can close. Everything else was served or refused.

    assert_left_clean(server, workers)


def assert_left_clean(server: Gunicorn, workers: set[int]) -> None:
    """The stale samples were dropped on start and no worker left live gauges behind."""
    pids = {int(p.stem.rsplit("_", 1)[1]) for p in server.multiproc_dir.glob("*.db")}
    assert pids <= workers, f"files of {pids - workers} in {server.multiproc_dir}"
    assert not list(server.multiproc_dir.glob("gauge_live*")), list(server.multiproc_dir.iterdir())
    outlived = {pid for pid in workers if Path(f"/proc/{pid}").exists()}
    assert not outlived, f"workers {outlived} outlived the master"
