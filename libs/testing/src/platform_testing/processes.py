"""Processes: the cross-service tests run services, gunicorn, nginx and prometheus for real."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 40) -> str:
    """The end of a process's log, for failure messages."""
    if not path.exists():
        return f"({path} does not exist)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:]) or "(empty)"


def spawn(
    command: list[str], log_path: Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `command` in a process group of its own (so killpg reaches its children), its
    output appended to `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - the tests' own commands
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process_group(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM the process's group (started in a session of its own), then SIGKILL whatever
    is left of it: workers may outlive a master that was killed."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)


def require_tool(
    name: str, install_hint: str, env_var: str | None = None, local: Path | None = None
) -> str:
    """$env_var, then a repository-local copy, then PATH. A missing tool fails the test,
    never skips it: a skipped monitoring test in CI would pass dashboards nobody has run."""
    candidates = [os.environ.get(env_var, "") if env_var else "", str(local) if local else ""]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found:
        return found
    hint = f"{install_hint} (or set {env_var})" if env_var else install_hint
    pytest.fail(f"{name} is not installed: {hint}")
