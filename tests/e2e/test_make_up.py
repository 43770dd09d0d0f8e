"""`make up`'s launcher on the embedded servers: no PostgreSQL, no Redis server installed."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from platform_testing import free_port, log_tail, spawn, stop_process_group
from platform_testing.embedded_postgres import database_url
from platform_testing.smtp import mailed_token

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def free_port_base() -> int:
    """Three consecutive free ports (auth, users, orgs)."""
    for _ in range(50):
        base = free_port()
        if base < 65000 and all(_is_free(base + i) for i in range(3)):
            return base
    raise AssertionError("no three consecutive free ports")


def _is_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        # Only a listener makes the port unusable; connections in TIME_WAIT do not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def _database_names(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return set((await conn.execute(text("SELECT datname FROM pg_database"))).scalars())
    finally:
        await engine.dispose()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _mailed_token(mail_dir: Path, to: str, subject: str) -> str:
    """The token of the newest mail to `to` about `subject`, read from its .eml file."""
    deadline = time.monotonic() + 15
    while True:
        for path in sorted(mail_dir.glob("*.eml"), reverse=True):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if to in str(message["To"]) and subject in str(message["Subject"]).lower():
                assert isinstance(message, EmailMessage)
                return mailed_token(message)
        assert time.monotonic() < deadline, f"no mail to {to} about {subject!r}"
        time.sleep(0.2)


def _mail_walkthrough(client: httpx.Client, auth: str, mail_dir: Path, log: Path) -> None:
    """The README's walk-through: register, verify from the mail, forget and reset."""
    who = {"email": "walker@up.example", "password": "a perfectly fine passphrase"}
    registered = client.post(f"{auth}/register", json={**who, "name": "Walker"})
    assert registered.status_code == 201, registered.text
    token = _mailed_token(mail_dir, who["email"], "verify")
    assert client.post(f"{auth}/email/verify", json={"token": token}).status_code == 204
    assert "mail to walker@up.example" in log.read_text()
    forgot = client.post(f"{auth}/password/forgot", json={"email": who["email"]})
    assert forgot.status_code == 202
    token = _mailed_token(mail_dir, who["email"], "reset")
    new_password = "another perfectly fine passphrase"
    reset = client.post(
        f"{auth}/password/reset", json={"token": token, "new_password": new_password}
    )
    assert reset.status_code == 204, reset.text
    login = client.post(f"{auth}/login", json={**who, "password": new_password})
    assert login.status_code == 200, login.text


@pytest.mark.slow
def test_up_runs_the_platform_on_embedded_servers_and_stops_cleanly(tmp_path: Path) -> None:
    base = free_port_base()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith(("_DATABASE_URL", "_REDIS_URL")) and key != "REDIS_URL"
    }
    env.pop("PLATFORM_ADMIN_PASSWORD", None)
    env["PLATFORM_ADMIN_EMAIL"] = "admin@up.example"
    log = tmp_path / "up.log"
    data = tmp_path / "data"
    proc = spawn(
        [
            sys.executable,
            "scripts/up.py",
            "--data-dir",
            str(data),
            "--port-base",
            str(base),
            "--smtp-port",
            str(free_port()),
        ],
        log,
        REPO_ROOT,
        env,
    )
    try:
        deadline = time.monotonic() + 150
        while "Ctrl-C stops everything" not in log.read_text(errors="replace"):
            assert proc.poll() is None, f"up.py exited early:\n{log_tail(log)}"
            assert time.monotonic() < deadline, f"not up within 150 s:\n{log_tail(log)}"
            time.sleep(0.5)
        output = log.read_text()
        password = (data / "admin-password").read_text().strip()
        assert f"Platform admin: admin@up.example  password: {password}" in output
        for offset, name in enumerate(("auth", "users", "orgs")):
            assert f"http://127.0.0.1:{base + offset}/api/v1/{name}/docs" in output
        # One embedded PostgreSQL with a database per service; one embedded Redis for all.
        databases = asyncio.run(_database_names(database_url(data, "postgres")))
        assert {"auth", "users", "orgs"} <= databases
        assert (data / "redis.sock").exists()
        assert not list(data.rglob("*.db"))

        with httpx.Client(timeout=10) as client:
            auth = f"http://127.0.0.1:{base}/api/v1/auth"
            tokens = client.post(
                f"{auth}/login", json={"email": "admin@up.example", "password": password}
            )
            assert tokens.status_code == 200, tokens.text
            bearer = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
            me = client.get(f"http://127.0.0.1:{base + 1}/api/v1/users/me", headers=bearer)
            assert me.status_code == 200, me.text
            assert me.json()["role"] == "admin"
            assert me.json()["organizations"] == []
            # Revocation crosses processes through the shared embedded Redis.
            assert client.post(f"{auth}/logout-all", headers=bearer).status_code == 204
            deadline = time.monotonic() + 5
            while (
                client.get(f"http://127.0.0.1:{base + 2}/api/v1/orgs", headers=bearer).status_code
                != 401
            ):
                assert time.monotonic() < deadline, "orgs still accepts the token after 5 s"
                time.sleep(0.2)
            _mail_walkthrough(client, auth, data / "mail", log)

        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert proc.wait(timeout=60) == 0, log_tail(log)
        # The services were in up.py's process group: none of them may outlive it.
        deadline = time.monotonic() + 10
        while _group_alive(proc.pid):
            assert time.monotonic() < deadline, "a service outlived up.py"
            time.sleep(0.2)
        for offset in range(3):
            assert _is_free(base + offset), f"port {base + offset} still taken after Ctrl-C"
        # Ctrl-C stopped the embedded servers too.
        assert not (data / "postgres" / "postmaster.pid").exists()
        assert (
            not (data / "redis.sock").exists()
            or subprocess.run(
                ["redis-cli", "-s", str(data / "redis.sock"), "ping"],
                capture_output=True,
                check=False,
            ).returncode
            != 0
        )
    finally:
        stop_process_group(proc)
