"""Request and response bodies of the webhooks and audit-log endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from platform_common.events import EventType

WebhookEventName = EventType | Literal["*"]


class WebhookCreate(BaseModel):
    url: str = Field(min_length=1, max_length=2048, description="An http(s) URL")
    events: list[WebhookEventName] = Field(
        min_length=1,
        max_length=50,
        description='Event types to deliver, or `["*"]` for every type',
    )


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    events: list[str]
    created_at: datetime
    disabled_at: datetime | None = None
    disabled_reason: str | None = None


class WebhookCreated(WebhookRead):
    secret: str = Field(description="`whsec_` + base64: the signing key, shown only in this answer")


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    attempt: int
    status_code: int | None
    error: str | None
    created_at: datetime
    next_attempt_at: datetime | None
