"""Mail: a durable outbox, templates, and a background sender over SMTP.

```
settings.py   MailSettings       `<SVC>_SMTP_URL`, `<SVC>_SMTP_PASSWORD`, `<SVC>_SMTP_TLS`,
                                 `<SVC>_MAIL_FROM`, `<SVC>_MAIL_LINK_BASE_URL`, ...
models.py     MailOutboxMixin    the outbox table each service maps into its own database
templates.py  MailTemplates      Jinja2: a subject, a plain-text and an HTML part (escaped)
outbox.py     Mailer             renders a message and adds its row to the caller's session,
                                 so it commits (or not) with the change that causes it
sender.py     MailSender         the worker in every service process: claims due rows with
                                 FOR UPDATE SKIP LOCKED, sends over SMTP, marks them sent
```
"""

from platform_common.mail.models import MailOutboxMixin
from platform_common.mail.outbox import Mailer
from platform_common.mail.sender import MailSender, SmtpTransport
from platform_common.mail.settings import MailSettings
from platform_common.mail.templates import MailTemplates, RenderedMail

__all__ = [
    "MailOutboxMixin",
    "MailSender",
    "MailSettings",
    "MailTemplates",
    "Mailer",
    "RenderedMail",
    "SmtpTransport",
]
