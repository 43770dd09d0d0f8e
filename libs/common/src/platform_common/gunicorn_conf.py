"""The one gunicorn configuration every service runs with in production.

Used as ``gunicorn -c python:platform_common.gunicorn_conf '<svc>.app:create_app()'``; gunicorn
reads the module-level names below as its settings and the functions as its server hooks.
Everything tunable comes from the environment so the Helm chart, not the image, decides::

    gunicorn master  (on_starting: fresh PROMETHEUS_MULTIPROC_DIR)
      |-- fork --> worker 1  (post_fork: start tracing; app built here, not in the master)
      |-- fork --> worker 2
      `-- child_exit(worker) --> mark_process_dead(pid) so its live gauges stop counting

Choices, one by one:

- ``bind`` from ``PORT`` (default 8000) on 0.0.0.0: the container port is named ``http``
  and /metrics is served on the same port, so there is nothing else to listen on.
- ``worker_class`` is ``platform_common.gunicorn_worker.PlatformWorker``, the ``uvicorn-worker``
  package's UvicornWorker without uvicorn's proxy-header handling and Server header;
  ``uvicorn.workers`` is deprecated upstream.
- ``workers`` from ``WEB_CONCURRENCY`` (default 2). Scale out with more pods (the HPA), not
  with many workers per pod: each worker holds its own database and Redis pools.
- ``graceful_timeout`` (``GUNICORN_GRACEFUL_TIMEOUT``, default 25 s): after SIGTERM a worker
  gets this long to finish in-flight requests. The pod's terminationGracePeriodSeconds must
  exceed preStop sleep + this value, which the chart tests assert.
- ``keepalive`` (``GUNICORN_KEEPALIVE``, default 75 s) is longer than the 60 s idle timeout
  of common load balancers and ingress controllers, so the proxy, not us, closes idle
  connections; otherwise it may reuse a connection we are closing and answer a 502.
- ``timeout`` (``GUNICORN_TIMEOUT``, default 60 s): for async workers this is the heartbeat
  deadline; a worker whose event loop is blocked that long is killed and replaced.
- ``worker_tmp_dir`` is /dev/shm when it exists: the heartbeat file is touched constantly,
  and the root filesystem is read-only in the cluster.
- ``forwarded_allow_ips`` is empty: the server never rewrites the client address from
  ``X-Forwarded-For``. The app does, per the contract, only through the proxies listed in
  ``<SERVICE>_TRUSTED_PROXIES`` (platform_common.client_address).
- ``accesslog`` off unless ``GUNICORN_ACCESSLOG`` is set (e.g. ``-``): the application logs
  every request itself with its request id (``platform_common.access``), a second line
  without the id adds nothing.
- ``preload_app`` stays off: the app, its pools and its tracer are built in each worker.
- ``control_socket_disable``: gunicorn >= 25 opens a control socket under $HOME by default;
  there is no home to write to in a read-only container and nothing should steer it there.
- Prometheus multiprocess mode: every worker writes its samples as files under
  ``PROMETHEUS_MULTIPROC_DIR`` (an emptyDir at /run/prometheus in the cluster). The master
  empties that directory on start, so no stale worker files from an earlier run of the
  container survive a restart, and ``child_exit`` marks a dead worker's gauges as gone.
- ``post_worker_init`` freezes the start-up heap (``gc.freeze()``) once the worker has built
  the app: the modules, models, schemas and routes (over a hundred thousand objects) then
  live outside the cyclic collector. Without it every full collection walks them all,
  stopping the event loop for about 120 ms every second or two under load and collecting
  nothing (bench/README.md); with it one takes a few milliseconds (4 to 25 ms seen) and they
  come far less often. The app's lifespan freezes again once it has started
  (platform_common.app), so its pools and clients are out of sight too.
- ``post_fork`` starts tracing in the worker through
  ``platform_common.observability.setup_tracing_after_fork`` when it exists: the OTLP
  exporter's background thread does not survive ``fork()``, so it must start after it.
"""

from __future__ import annotations

import gc
import importlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import multiprocess

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


bind = [f"0.0.0.0:{_env_int('PORT', 8000)}"]
worker_class = "platform_common.gunicorn_worker.PlatformWorker"
workers = _env_int("WEB_CONCURRENCY", 2)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 25)
keepalive = _env_int("GUNICORN_KEEPALIVE", 75)
timeout = _env_int("GUNICORN_TIMEOUT", 60)
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", 0)
forwarded_allow_ips = ""
preload_app = False
# One image recipe serves every service: the image sets SERVICE and its CMD names no app.
# An app given on the command line still wins.
if os.environ.get("SERVICE"):
    wsgi_app = f"{os.environ['SERVICE']}.app:create_app()"
control_socket_disable = True

_SHM = "/dev/shm"  # noqa: S108 - tmpfs for the heartbeat file, not for data
if Path(_SHM).is_dir():
    worker_tmp_dir = _SHM

accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")


def _multiproc_dir() -> Path | None:
    raw = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    return Path(raw) if raw else None


def on_starting(server: Arbiter) -> None:
    """Give the workers an empty metrics directory (the master runs this once, before forking).

    The directory itself is usually a mount point (an emptyDir), so its contents are removed
    rather than the directory.
    """
    directory = _multiproc_dir()
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    server.log.info("prometheus multiprocess directory %s emptied", directory)


def post_fork(server: Arbiter, worker: Worker) -> None:
    """Start tracing in the freshly forked worker, if the shared library offers it."""
    try:
        observability = importlib.import_module("platform_common.observability")
    except ModuleNotFoundError as exc:
        if exc.name != "platform_common.observability":
            raise  # the module exists but one of its own imports is broken: say so
        return
    setup = getattr(observability, "setup_tracing_after_fork", None)
    if callable(setup):
        setup()
    server.log.debug("worker %s forked", worker.pid)


def post_worker_init(worker: Worker) -> None:
    """Move what start-up built out of the collector's sight (see the module docstring)."""
    gc.collect()
    gc.freeze()
    # Young collections every 10,000 allocations instead of 700: a request's objects mostly
    # die with it before one runs, instead of being promoted while in flight and walked
    # again by older collections (bench/README.md: about 4 % of a worker's CPU).
    gc.set_threshold(10_000, 10, 10)
    worker.log.info("froze %d start-up objects out of the cyclic collector", gc.get_freeze_count())


def child_exit(server: Arbiter, worker: Worker) -> None:
    """Drop a dead worker's live gauges from the multiprocess metrics."""
    if _multiproc_dir() is None:
        return
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
