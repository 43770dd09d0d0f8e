"""What the auth image does, without Docker: its virtual environment and its CMD.

```
image_spec (session)     the Dockerfile parsed with SERVICE=auth: the base image's Python
                         version, the runtime stage's ENV and CMD (exec form, JSON)
image_venv (session)     uv build --wheel platform-common, auth-service      (the workspace
                         uv export --frozen --no-dev --no-emit-workspace      members, as
                         uv venv --python <image's>; uv pip install            wheels: no
                           --compile-bytecode -r req.txt, then the wheels      editable path
                           --no-deps; uv pip check                             into the repo)
production (module)      a fresh database, a P-256 current.pem, <venv>/bin/auth-migrate with
                         AUTH_ENVIRONMENT=production and the image's ENV
Gunicorn                 the Dockerfile's CMD, PATH pointing at the venv, cwd a temp folder,
                         its own process group, PORT free, PROMETHEUS_MULTIPROC_DIR its own;
                         ready when /readyz answers and every worker finished start-up
```

Every process is stopped in a finalizer (SIGTERM to its group, then SIGKILL). A failing test
that used a server gets the tail of its log as a report section. In CI (`CI=true`) a missing
tool (uv, prometheus) fails the tests; elsewhere it skips them with the command to install it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from platform_testing import (  # noqa: F401
    Backends,
    backends,
    free_port,
    spawn,
    stop_process_group,
)
from platform_testing import log_tail as _log_tail

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
BUILD_ARGS = {"SERVICE": "auth"}  # docker build --build-arg SERVICE=auth
HOST = "127.0.0.1"
BUILD_TIMEOUT = 300.0  # a cold uv cache downloads every locked wheel
READY_TIMEOUT = 90.0  # two busy cores, a master and two workers importing the app
LOG_TAIL_LINES = 40


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    return _log_tail(path, lines)


_RUNNING: list[Gunicorn] = []


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def find_tool(name: str, install_hint: str, env_var: str | None = None) -> str:
    """$env_var, then PATH; fail in CI (a skipped runtime test would pass a broken image)."""
    candidate = os.environ.get(env_var, "") if env_var else ""
    if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed: {install_hint}"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def child_pids(pid: int) -> set[int]:
    """Live children of `pid`, read from /proc (no procps needed)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # "pid (comm) state ppid ...": comm may contain spaces and parentheses.
            after_comm = stat.read_text().rsplit(")", 1)[1].split()
            if int(after_comm[1]) == pid and after_comm[0] != "Z":
                children.add(int(stat.parent.name))
    return children


def run(command: list[str], *, timeout: float = BUILD_TIMEOUT, **kwargs: Any) -> str:
    """Run a build step; fail with its output when it fails."""
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`{shlex.join(command)}` did not finish within {timeout:g} s:\n{exc.output}")
    if result.returncode != 0:
        pytest.fail(
            f"`{shlex.join(command)}` failed (exit {result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result.stdout


# --- the Dockerfile ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSpec:
    python_version: str  # "3.11", from the base image's tag
    runtime_env: dict[str, str]  # the runtime stage's ENV
    command: list[str]  # the runtime stage's CMD
    workdir: str


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    pairs = []
    for line in joined.splitlines():
        parts = line.strip().split(None, 1)
        if parts:
            pairs.append((parts[0].upper(), parts[1] if len(parts) > 1 else ""))
    return pairs


def parse_dockerfile(path: Path, build_args: dict[str, str]) -> ImageSpec:
    instructions = _instructions(path.read_text())
    args = dict(build_args)
    for name, value in instructions:
        if name == "ARG" and "=" in value:
            key, default = value.split("=", 1)
            args.setdefault(key.strip(), default.strip())
    image = args.get("PYTHON_IMAGE", "")
    version = re.match(r"python:(\d+\.\d+)", image)
    assert version, f"{path}: cannot read the Python version from PYTHON_IMAGE={image!r}"

    stage: str | None = None
    env: dict[str, str] = {}
    command: list[str] = []
    workdir = "/"
    for name, value in instructions:
        if name == "FROM":
            stage = value.split()[-1] if " AS " in value.upper() else None
            continue
        if stage != "runtime":
            continue
        if name == "ENV":
            for token in shlex.split(value):
                key, _, val = token.partition("=")
                # What docker does with an ARG in ENV: ${NAME} becomes the build argument.
                env[key] = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), val)
        elif name == "CMD":
            command = json.loads(value)
        elif name == "WORKDIR":
            workdir = value.strip()
    assert command, f"{path}: no exec-form CMD in the runtime stage"
    return ImageSpec(version.group(1), env, command, workdir)


@pytest.fixture(scope="session")
def image_spec() -> ImageSpec:
    return parse_dockerfile(DOCKERFILE, BUILD_ARGS)


@pytest.fixture(scope="session")
def image_venv(image_spec: ImageSpec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's /app/.venv: locked third-party packages plus the members' wheels."""
    uv = find_tool("uv", "run `make tools` (it installs uv into .tools/)", env_var="UV")
    root = tmp_path_factory.mktemp("image")
    wheels = root / "wheels"
    requirements = root / "requirements.txt"
    venv = root / "venv"
    # Two builds side by side: each is mostly waiting for hatchling to start.
    builds = [
        subprocess.Popen(
            [uv, "build", "--quiet", "--wheel", "--package", package, "--out-dir", str(wheels)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for package in ("platform-common", "auth-service")
    ]
    try:
        for build in builds:
            output, _ = build.communicate(timeout=BUILD_TIMEOUT)
            assert build.returncode == 0, f"uv build failed:\n{output.decode(errors='replace')}"
    finally:
        for build in builds:
            stop_process_group(build)
    run(
        [uv, "export", "--quiet", "--frozen", "--no-dev", "--no-emit-workspace",
         "--package", "auth-service", "--output-file", str(requirements)],
        cwd=REPO_ROOT,
    )  # fmt: skip
    run([uv, "venv", "--quiet", "--python", image_spec.python_version, str(venv)], cwd=root)
    python = str(venv / "bin" / "python")
    # The export carries hashes (checked here, as `uv sync --frozen` does in the image); the
    # wheels have none, so they go in a second step, without resolving anything new.
    run([uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", python,
         "--requirement", str(requirements)], cwd=root)  # fmt: skip
    run([uv, "pip", "install", "--quiet", "--compile-bytecode", "--no-deps", "--python", python,
         *map(str, sorted(wheels.glob("*.whl")))], cwd=root)  # fmt: skip
    # Every dependency the wheels declare is among the locked ones that were installed.
    run([uv, "pip", "check", "--python", python], cwd=root)
    return venv


# --- the production configuration -------------------------------------------------------------


@dataclass
class Production:
    """A migrated auth database and the environment the image's containers would get."""

    venv: Path
    spec: ImageSpec
    root: Path
    env: dict[str, str]
    admin_email: str
    admin_password: str
    migrate_log: Path
    migrate_multiproc_dir: Path

    def container_env(self, **overrides: str) -> dict[str, str]:
        env = dict(self.env)
        env.update(overrides)
        return env


def write_signing_key(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = directory / "current.pem"
    path.write_bytes(pem)
    path.chmod(0o600)


@pytest.fixture(scope="module")
def production(
    image_venv: Path,
    image_spec: ImageSpec,
    backends: Backends,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Production]:
    root = tmp_path_factory.mktemp("production")
    keys = root / "signing-keys"
    write_signing_key(keys)
    database_url = asyncio.run(backends.create_database("auth_runtime"))
    admin_email = f"admin-{secrets.token_hex(4)}@runtime.example.com"
    admin_password = secrets.token_urlsafe(18)

    # Only what the image and the chart set: nothing of this shell (VIRTUAL_ENV, PYTHONPATH,
    # AUTH_*) may leak in and make the workspace importable or change the settings.
    env = dict(image_spec.runtime_env)
    image_bin = "/app/.venv/bin"
    assert image_bin in env.get("PATH", ""), f"the image's PATH no longer has {image_bin}"
    env["PATH"] = env["PATH"].replace("$PATH", "/usr/local/bin:/usr/bin:/bin")
    env["PATH"] = env["PATH"].replace(image_bin, str(image_venv / "bin"))
    env.update(
        HOME=str(root / "home"),
        LANG="C.UTF-8",
        AUTH_ENVIRONMENT="production",
        AUTH_DATABASE_URL=database_url,
        AUTH_REDIS_URL=backends.redis_url,
        AUTH_SIGNING_KEYS_DIR=str(keys),
        AUTH_DATA_DIR=str(root / "data"),
        # Nobody listens there: the outbox retries in the background, as when users is down.
        AUTH_USERS_URL=f"http://{HOST}:{free_port()}",
        # The limiter runs; the load tests' hundreds of registrations from one address a
        # minute stay under it.
        AUTH_RATE_LIMIT_ANONYMOUS="100000/minute",
    )
    (root / "home").mkdir()

    migrate_dir = root / "migrate-multiproc"
    migrate_dir.mkdir()
    migrate_log = root / "auth-migrate.log"
    migrate = shutil.which("auth-migrate", path=env["PATH"])
    assert migrate == str(image_venv / "bin" / "auth-migrate"), migrate
    migrate_env = dict(
        env,
        PROMETHEUS_MULTIPROC_DIR=str(migrate_dir),
        PLATFORM_ADMIN_EMAIL=admin_email,
        PLATFORM_ADMIN_PASSWORD=admin_password,
    )
    cwd = root / "app"  # the image's WORKDIR: anything but the repository
    cwd.mkdir()
    proc = spawn([migrate], migrate_log, cwd, migrate_env)
    try:
        try:
            code = proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            pytest.fail(f"auth-migrate did not finish within 180 s:\n{tail(migrate_log)}")
        assert code == 0, f"auth-migrate failed (exit {code}):\n{tail(migrate_log)}"
        yield Production(
            image_venv,
            image_spec,
            root,
            env,
            admin_email,
            admin_password,
            migrate_log,
            migrate_dir,
        )
    finally:
        stop_process_group(proc)
        asyncio.run(backends.drop_databases())


# --- gunicorn, as the image's CMD -------------------------------------------------------------


_STARTED = re.compile(r"\[(\d+)\] \[INFO\] Application startup complete")


@dataclass
class Gunicorn:
    """The image's CMD on a free port with a metrics folder of its own."""

    production: Production
    name: str
    workers: int = 2
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.root = self.production.root / self.name
        self.root.mkdir()
        self.multiproc_dir = self.root / "prometheus"
        self.multiproc_dir.mkdir()
        self.cwd = self.root / "app"
        self.cwd.mkdir()
        self.log_path = self.root / "gunicorn.log"
        self.env = self.production.container_env(
            PORT=str(self.port),
            WEB_CONCURRENCY=str(self.workers),
            PROMETHEUS_MULTIPROC_DIR=str(self.multiproc_dir),
        )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def command(self) -> list[str]:
        """The CMD with its program resolved on the container's PATH, as exec would."""
        program, *args = self.production.spec.command
        resolved = shutil.which(program, path=self.env["PATH"])
        assert resolved is not None, f"{program} is not on the image's PATH {self.env['PATH']}"
        return [resolved, *args]

    def start(self) -> None:
        self.proc = spawn(self.command, self.log_path, self.cwd, self.env)
        _RUNNING.append(self)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self) -> str:
        return tail(self.log_path)

    def started_workers(self) -> set[int]:
        """Workers whose app finished its lifespan start-up, by pid (from uvicorn's log line)."""
        return {int(pid) for pid in _STARTED.findall(self.log_text())}

    def worker_pids(self) -> set[int]:
        assert self.proc is not None
        return child_pids(self.proc.pid)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """/readyz answers 200 and every worker has started (so both take connections)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"gunicorn exited (code {self.proc.returncode}) before it was ready:\n"
                    + self.log_tail()
                )
            live = self.worker_pids()
            if len(live) == self.workers and live <= self.started_workers():
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200:
                        return
            time.sleep(0.2)
        pytest.fail(
            f"gunicorn was not ready with {self.workers} workers within {timeout:g} s:\n"
            + self.log_tail()
        )

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)
        if self in _RUNNING:
            _RUNNING.remove(self)

    def report(self) -> tuple[str, str]:
        return (f"gunicorn {self.name} log (last {LOG_TAIL_LINES} lines)", self.log_tail())


@pytest.fixture(scope="module")
def auth_server(production: Production) -> Iterator[Gunicorn]:
    server = Gunicorn(production, "server")
    try:
        server.start()
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and "production" in getattr(item, "fixturenames", ()):
        report.sections.extend(server.report() for server in list(_RUNNING))
