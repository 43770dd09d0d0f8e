"""Mail settings, mixed into the settings class of each service that sends mail (so they
read `<SVC>_SMTP_URL`, `<SVC>_MAIL_FROM`, ... with the service's own prefix)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, SecretStr

TlsMode = Literal["auto", "starttls", "tls", "none"]


class MailSettings(BaseModel):
    # smtp://user:pass@host:587 (STARTTLS when the server offers it, see smtp_tls) or
    # smtps://user:pass@host:465 (TLS from the first byte). None: mail is queued in the
    # outbox and not sent until an SMTP server is configured.
    smtp_url: SecretStr | None = None
    # The password from a Secret, instead of (or overriding) the one in the URL.
    smtp_password: SecretStr | None = None
    # auto: implicit TLS for smtps://; with credentials STARTTLS required (a password never
    # crosses in plain text), without them STARTTLS when the server offers it;
    # starttls: STARTTLS required; tls: implicit TLS; none: plain text (a local sink only).
    smtp_tls: TlsMode = "auto"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    # CA bundle the server's certificate is checked against (a relay with a private CA);
    # None: the system's trust store.
    smtp_ca_file: Path | None = None
    mail_from: str = "Identity Platform <no-reply@localhost>"
    # Links in mails: this base, a path per message, and the token as `?token=`.
    mail_link_base_url: str = "http://localhost:8000"
    # The sender polls the outbox this often; a commit that queues a mail wakes it at once.
    mail_poll_seconds: float = Field(default=2.0, gt=0)
    # Retries: exponential back-off with jitter, capped; a message the server refuses for
    # good (5xx for its recipient or content) is given up after this many attempts; anything
    # else (down, 4xx, a refused login or sender) is retried until sent.
    mail_max_backoff_seconds: float = Field(default=600.0, gt=0)
    mail_max_rejections: int = Field(default=5, ge=1)

    def smtp_target(self) -> SmtpTarget | None:
        if self.smtp_url is None:
            return None
        parts = urlsplit(self.smtp_url.get_secret_value())
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("smtp_url must start with smtp:// or smtps://")
        tls = self.smtp_tls
        if tls == "auto" and parts.scheme == "smtps":
            tls = "tls"
        elif tls == "auto" and parts.username:
            tls = "starttls"
        password = (
            self.smtp_password.get_secret_value()
            if self.smtp_password is not None
            else unquote(parts.password or "") or None
        )
        return SmtpTarget(
            host=parts.hostname or "localhost",
            port=parts.port or (465 if tls == "tls" else 587 if tls == "starttls" else 25),
            username=unquote(parts.username) if parts.username else None,
            password=password,
            tls=tls,
            timeout=self.smtp_timeout_seconds,
            ca_file=self.smtp_ca_file,
        )


class SmtpTarget(BaseModel):
    host: str
    port: int
    username: str | None
    password: str | None
    tls: TlsMode
    timeout: float
    ca_file: Path | None = None
