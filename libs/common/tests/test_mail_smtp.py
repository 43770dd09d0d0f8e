"""The SMTP transport against real aiosmtpd servers: STARTTLS and implicit TLS with a
certificate of a private CA (`smtp_ca_file`), credentials from the settings, and the
failures the sender tells apart (unreachable, rejected)."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from platform_common.clock import utcnow
from platform_common.mail import MailSettings, SmtpTransport
from platform_common.mail.sender import SmtpFailure, build_message
from platform_testing import free_port

USER, PASSWORD = "mailer", "smtp secret"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("smtp-tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Recorder:
    def __init__(self) -> None:
        self.received: list[tuple[list[str], bytes]] = []
        self.logins: list[tuple[str, str, bool]] = []
        self.refuse_sender = False

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.refuse_sender:
            return "553 sender not allowed"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("refused@"):
            return "550 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.received.append((list(envelope.rcpt_tos), envelope.original_content))
        return "250 Message accepted"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        self.logins.append((login, password, session.ssl is not None))
        return AuthResult(success=(login, password) == (USER, PASSWORD))


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def starttls_server(certificate: tuple[Path, Path]) -> Iterator[tuple[Recorder, int]]:
    recorder, port = Recorder(), free_port()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_context(certificate),
        require_starttls=True,
        authenticator=recorder.authenticate,
        auth_required=True,
    )
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[tuple[Recorder, int]]:
    recorder, port = Recorder(), free_port()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        ssl_context=server_context(certificate),
        authenticator=recorder.authenticate,
        auth_required=True,
        # aiosmtpd knows TLS only from STARTTLS; this connection is TLS from the first byte.
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()


class Row:
    def __init__(self, to: str) -> None:
        self.id = uuid.uuid4()
        self.to_address = to
        self.subject = "Hello"
        self.text_body = "plain"
        self.html_body = "<p>html</p>"
        self.created_at = utcnow()


def transport(url: str, ca_file: Path | None, **settings: Any) -> SmtpTransport:
    target = MailSettings(
        smtp_url=SecretStr(url), smtp_ca_file=ca_file, smtp_timeout_seconds=5, **settings
    ).smtp_target()
    assert target is not None
    return SmtpTransport(target)


async def send(smtp: SmtpTransport, to: str) -> None:
    try:
        await smtp.send(build_message(Row(to), "Platform <no-reply@example.com>"))  # type: ignore[arg-type]
    finally:
        await smtp.close()


async def test_starttls_with_credentials_from_the_settings(
    starttls_server: tuple[Recorder, int], certificate: tuple[Path, Path]
) -> None:
    recorder, port = starttls_server
    # The user in the URL, the password from its own setting (a Secret in the chart).
    smtp = transport(
        f"smtp://{USER}@127.0.0.1:{port}", certificate[0], smtp_password=SecretStr(PASSWORD)
    )
    await send(smtp, "alice@example.com")
    assert recorder.logins == [(USER, PASSWORD, True)]  # after STARTTLS, never in plain text
    [(recipients, raw)] = recorder.received
    assert recipients == ["alice@example.com"] and b"Subject: Hello" in raw


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_implicit_tls(
    tls_server: tuple[Recorder, int], certificate: tuple[Path, Path]
) -> None:
    recorder, port = tls_server
    smtp = transport(f"smtps://{USER}:smtp%20secret@127.0.0.1:{port}", certificate[0])
    await send(smtp, "bob@example.com")
    assert recorder.logins == [(USER, PASSWORD, False)]
    assert recorder.received[0][0] == ["bob@example.com"]


async def test_an_untrusted_certificate_is_refused(
    starttls_server: tuple[Recorder, int],
) -> None:
    _, port = starttls_server
    smtp = transport(f"smtp://{USER}:x@127.0.0.1:{port}", None)
    with pytest.raises(SmtpFailure) as failure:
        await send(smtp, "alice@example.com")
    assert failure.value.reason == "unreachable" and not failure.value.permanent


async def test_a_refused_recipient_is_a_permanent_rejection(
    starttls_server: tuple[Recorder, int], certificate: tuple[Path, Path]
) -> None:
    _, port = starttls_server
    smtp = transport(f"smtp://{USER}@127.0.0.1:{port}", certificate[0],
                     smtp_password=SecretStr(PASSWORD))  # fmt: skip
    with pytest.raises(SmtpFailure) as failure:
        await send(smtp, "refused@example.com")
    assert failure.value.permanent and failure.value.reason == "rejected"
    assert "550" in str(failure.value)


async def test_a_refused_sender_is_retried_not_given_up(
    starttls_server: tuple[Recorder, int], certificate: tuple[Path, Path]
) -> None:
    # The configuration's fault (mail.from), not the message's: no mail is lost to it.
    recorder, port = starttls_server
    recorder.refuse_sender = True
    smtp = transport(f"smtp://{USER}@127.0.0.1:{port}", certificate[0],
                     smtp_password=SecretStr(PASSWORD))  # fmt: skip
    with pytest.raises(SmtpFailure) as failure:
        await send(smtp, "alice@example.com")
    assert failure.value.reason == "rejected" and not failure.value.permanent


async def test_nothing_listening_is_unreachable() -> None:
    smtp = transport(f"smtp://127.0.0.1:{free_port()}", None)
    with pytest.raises(SmtpFailure) as failure:
        await send(smtp, "alice@example.com")
    assert failure.value.reason == "unreachable"
