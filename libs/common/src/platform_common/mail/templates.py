"""Mail templates (Jinja2), one message a name under `templates/`:

```
<name>.subject.txt   the subject (one line)
<name>.txt           the plain-text part
<name>.html          the HTML part (autoescaped: names and addresses cannot inject markup)
```

Every template gets `product` and, when the message carries a token, `link`: the configured
base URL, the message's path and the token as the query parameter `token`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES_DIR = Path(__file__).parent / "templates"
PRODUCT = "Identity Platform"


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def token_link(base_url: str, path: str, token: str) -> str:
    """`base_url` + `path`, with `token` as the query parameter (added to any query the base
    already has)."""
    base = urlsplit(base_url)
    full_path = base.path.rstrip("/") + "/" + path.lstrip("/")
    query = "&".join(q for q in (base.query, urlencode({"token": token})) if q)
    return urlunsplit((base.scheme, base.netloc, full_path, query, ""))


class MailTemplates:
    def __init__(self, link_base_url: str, directory: Path = TEMPLATES_DIR) -> None:
        self.link_base_url = link_base_url
        loader = FileSystemLoader(directory)
        common: dict[str, Any] = {
            "loader": loader,
            "undefined": StrictUndefined,
            "keep_trailing_newline": True,
        }
        self.text = Environment(autoescape=False, **common)  # noqa: S701 - plain text
        self.html = Environment(autoescape=True, **common)

    def link(self, path: str, token: str) -> str:
        return token_link(self.link_base_url, path, token)

    def render(self, template: str, /, **context: Any) -> RenderedMail:
        context.setdefault("product", PRODUCT)
        subject = self.text.get_template(f"{template}.subject.txt").render(**context)
        return RenderedMail(
            subject=" ".join(subject.split()),
            text=self.text.get_template(f"{template}.txt").render(**context),
            html=self.html.get_template(f"{template}.html").render(**context),
        )
