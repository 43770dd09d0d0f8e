"""A real SMTP server for tests and `make up` (aiosmtpd, in a thread of its own).

Every message it accepts is kept (`messages`), written as one RFC 5322 file (`*.eml`) under
`directory` when one is given, and announced on stdout with `echo`. It can be stopped and
started again on the same port, to test that mail waits while the server is down.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from platform_testing.processes import free_port


class _Handler:
    def __init__(self, sink: MailSink) -> None:
        self.sink = sink

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        self.sink._received(raw, list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


class MailSink:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        directory: Path | None = None,
        echo: bool = False,
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.directory = directory
        self.echo = echo
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> MailSink:
        if self._controller is None:
            self._controller = Controller(
                _Handler(self), hostname=self.host, port=self.port, ready_timeout=10
            )
            self._controller.start()
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _received(self, raw: bytes, recipients: list[str]) -> None:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append(message)
            count = len(self.messages)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
            path = self.directory / f"{stamp}-{count:04d}.eml"
            path.write_bytes(raw)
            where = f" -> {path}"
        else:
            where = ""
        if self.echo:
            print(f"mail to {', '.join(recipients)}: {message['Subject']}{where}", flush=True)

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if address.lower() in str(m["To"]).lower()]

    def wait_for(
        self, predicate: Callable[[EmailMessage], bool], timeout: float = 10.0
    ) -> EmailMessage:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = [m for m in self.messages if predicate(m)]
            if found:
                return found[-1]
            if time.monotonic() > deadline:
                raise TimeoutError("no such mail arrived")
            time.sleep(0.02)

    async def wait_for_mail(
        self, to: str, subject_contains: str = "", wait_seconds: float = 10.0
    ) -> EmailMessage:
        def matches(message: EmailMessage) -> bool:
            return to.lower() in str(message["To"]).lower() and (
                subject_contains.lower() in str(message["Subject"]).lower()
            )

        return await asyncio.to_thread(self.wait_for, matches, wait_seconds)


def text_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "the mail has no plain-text part"
    content: Any = part.get_content()
    return str(content)


def html_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None, "the mail has no HTML part"
    content: Any = part.get_content()
    return str(content)


def mailed_token(message: EmailMessage) -> str:
    """The `token` query parameter of the first link in the mail's plain-text part."""
    for url in re.findall(r"https?://\S+", text_part(message)):
        tokens: list[str] = parse_qs(urlsplit(str(url)).query).get("token", [])
        if tokens:
            return tokens[0]
    raise AssertionError("no link with a token in the mail")
