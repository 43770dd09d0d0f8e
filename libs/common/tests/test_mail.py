"""platform_common.mail without a database: settings, links, templates, the message built."""

from __future__ import annotations

import uuid

import pytest
from pydantic import SecretStr

from platform_common.clock import utcnow
from platform_common.mail import MailSettings, MailTemplates
from platform_common.mail.sender import MailSender, build_message
from platform_common.mail.templates import token_link


@pytest.mark.parametrize(
    ("url", "tls", "expected"),
    [
        ("smtp://mail.example.com", "auto", ("mail.example.com", 25, None, None, "auto")),
        (
            "smtp://u:p%40ss@mail.example.com:587",
            "starttls",
            ("mail.example.com", 587, "u", "p@ss", "starttls"),
        ),
        ("smtps://u:pw@mail.example.com", "auto", ("mail.example.com", 465, "u", "pw", "tls")),
        ("smtp://127.0.0.1:1025", "none", ("127.0.0.1", 1025, None, None, "none")),
        # Credentials never cross in plain text: STARTTLS becomes required.
        (
            "smtp://u:pw@mail.example.com:587",
            "auto",
            ("mail.example.com", 587, "u", "pw", "starttls"),
        ),
    ],
)
def test_the_smtp_url_and_tls_mode(url: str, tls: str, expected: tuple[object, ...]) -> None:
    target = MailSettings(smtp_url=SecretStr(url), smtp_tls=tls).smtp_target()  # type: ignore[arg-type]
    assert target is not None
    assert (target.host, target.port, target.username, target.password, target.tls) == expected


def test_the_password_setting_overrides_the_urls() -> None:
    settings = MailSettings(
        smtp_url=SecretStr("smtp://u:old@h:587"), smtp_password=SecretStr("from-secret")
    )
    target = settings.smtp_target()
    assert target is not None and target.password == "from-secret"


def test_no_url_no_target_and_a_foreign_scheme_is_refused() -> None:
    assert MailSettings().smtp_target() is None
    with pytest.raises(ValueError, match="smtp"):
        MailSettings(smtp_url=SecretStr("http://h")).smtp_target()


def test_links_carry_the_token_as_a_query_parameter() -> None:
    assert token_link("https://app.example.com", "/verify", "a-b_c") == (
        "https://app.example.com/verify?token=a-b_c"
    )
    assert token_link("https://app.example.com/base/?lang=en", "reset", "t+/=") == (
        "https://app.example.com/base/reset?lang=en&token=t%2B%2F%3D"
    )


def test_each_template_renders_both_parts_and_escapes_html() -> None:
    templates = MailTemplates("https://app.example.com")
    hostile = "<b>Eve</b> & co"
    link = templates.link("/x", "tok")
    contexts = {
        "verify_email": {"name": hostile, "email": "e@x", "hours": 48, "link": link},
        "password_reset": {"name": hostile, "email": "e@x", "minutes": 30, "link": link},
        "email_change_confirm": {
            "name": hostile, "email": "e@x", "new_email": "n@x", "minutes": 60, "link": link,
        },
        "email_change_notice": {"name": hostile, "email": "e@x", "new_email": "n@x"},
        "new_sign_in": {
            "name": hostile, "email": "e@x", "when": "now", "address": "1.2.3.4", "user_agent": "ua",
        },
        "org_invitation": {
            "org_name": hostile, "email": "e@x", "role": "member", "expires_at": "soon", "link": link,
        },
    }  # fmt: skip
    for name, context in contexts.items():
        rendered = templates.render(name, **context)
        assert rendered.subject and "\n" not in rendered.subject
        assert hostile in rendered.text
        assert "&lt;b&gt;Eve&lt;/b&gt; &amp; co" in rendered.html, name
        assert "<b>Eve</b>" not in rendered.html
        if "link" in context:
            assert link in rendered.text and link in rendered.html


def test_the_message_has_a_plain_text_and_an_html_part_and_a_stable_id() -> None:
    class Row:
        id = uuid.uuid4()
        to_address = "to@example.com"
        subject = "Hello"
        text_body = "plain"
        html_body = "<p>html</p>"
        created_at = utcnow()

    message = build_message(Row(), "Platform <no-reply@mail.example.com>")  # type: ignore[arg-type]
    assert message["Message-ID"] == f"<{Row.id.hex}@mail.example.com>"
    assert message.get_body(("plain",)).get_content().strip() == "plain"  # type: ignore[union-attr]
    assert message.get_body(("html",)).get_content().strip() == "<p>html</p>"  # type: ignore[union-attr]


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    sender = MailSender.__new__(MailSender)
    sender.settings = MailSettings(mail_max_backoff_seconds=60)
    for attempts, (low, high) in {1: (1, 2), 3: (4, 8), 10: (30, 60), 50: (30, 60)}.items():
        values = {sender.backoff(attempts) for _ in range(50)}
        assert all(low <= v <= high for v in values), (attempts, values)
        assert len(values) > 1
