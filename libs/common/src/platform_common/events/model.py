"""The event every service records and publishes (the event stream contract).

```json
{"id": "<uuid>", "type": "member.added", "occurred_at": "2026-12-05T12:00:00Z",
 "actor": {"id": "<uuid | svc:name | null>", "kind": "user" | "service" | "system"},
 "org_id": "<uuid | null>", "target": {"type": "user", "id": "<id>"},
 "ip": "...", "user_agent": "...", "request_id": "...", "data": {...}}
```
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, Field, field_serializer

EventType = Literal[
    "user.registered",
    "user.verified",
    "user.updated",
    "user.disabled",
    "user.enabled",
    "user.deleted",
    "login.succeeded",
    "login.failed",
    "session.ended",
    "password.changed",
    "email.changed",
    "token.created",
    "token.deleted",
    "org.created",
    "org.updated",
    "org.deleted",
    "member.added",
    "member.role_changed",
    "member.removed",
    "invitation.created",
    "invitation.accepted",
    "invitation.revoked",
    "webhook.created",
    "webhook.deleted",
    "webhook.disabled",
]
EVENT_TYPES: Final[tuple[str, ...]] = get_args(EventType)

ActorKind = Literal["user", "service", "system"]
TargetType = Literal["user", "org", "invitation", "webhook", "session", "token"]

# Bounds of the stored text: what a client sends (its user agent, an email that failed to
# log in) never grows the table without limit.
MAX_ID = 320
MAX_USER_AGENT = 512
MAX_REQUEST_ID = 128
MAX_IP = 45


class Actor(BaseModel):
    id: str | None = Field(default=None, max_length=MAX_ID)
    kind: ActorKind = "user"

    @classmethod
    def user(cls, user_id: uuid.UUID | str) -> Actor:
        return cls(id=str(user_id), kind="user")

    @classmethod
    def service(cls, name: str) -> Actor:
        return cls(id=name if name.startswith("svc:") else f"svc:{name}", kind="service")

    @classmethod
    def system(cls) -> Actor:
        return cls(id=None, kind="system")


class Target(BaseModel):
    type: TargetType
    id: str = Field(max_length=MAX_ID)


class Event(BaseModel):
    id: uuid.UUID
    type: str
    occurred_at: datetime
    actor: Actor
    org_id: uuid.UUID | None = None
    target: Target
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @field_serializer("occurred_at")
    def _rfc3339(self, value: datetime) -> str:
        return value.isoformat().replace("+00:00", "Z")

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, raw: str | bytes) -> Event:
        return cls.model_validate_json(raw)


def truncate(value: str | None, limit: int) -> str | None:
    return None if value is None else value[:limit]
