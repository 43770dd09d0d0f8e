"""Secrets and signatures per the Standard Webhooks specification, with the
`standardwebhooks` library (the specification's reference implementation for Python):
`webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">` keyed with the
secret's bytes (`whsec_` + base64)."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook as _Signer

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix, not a secret


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature_headers(secret: str, message_id: str, body: str, at: datetime) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": _Signer(secret).sign(message_id, at, body),
    }
