"""Request and response bodies of the users API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from platform_common.text import NO_NUL

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_NUL)
]
Role = Literal["user", "admin"]

MAX_LOOKUP_IDS = 100
# `version` is stored as a PostgreSQL bigint.
MAX_BIGINT = 2**63 - 1


def in_utc(value: datetime) -> datetime:
    """An instant PostgreSQL's timestamptz can hold: 0001-01-01T00:00+14:00 is still year 1
    locally but before year 1 in UTC, which no datetime can represent."""
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the instant is out of range once converted to UTC") from exc


class ProfileRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    role: Role
    is_active: bool
    email_verified: bool = Field(description="The address was proven by a mailed token")
    created_at: datetime
    updated_at: datetime


class OrganizationSummary(BaseModel):
    """One of the caller's organizations, as orgs reports it."""

    id: uuid.UUID
    slug: str
    name: str
    role: str = Field(description="The caller's role in the organization")


class MeRead(ProfileRead):
    organizations: list[OrganizationSummary] | None = Field(
        description="The caller's organizations (at most 100), or null when orgs is unavailable"
    )


class ProfileUpdate(BaseModel):
    name: Name | None = Field(default=None, description="Omitted or null: unchanged")


class LookupRequest(BaseModel):
    ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_LOOKUP_IDS)


class UserSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    email: str


class UserEvent(BaseModel):
    """A user event from auth's outbox (`PUT /internal/v1/users/{id}`)."""

    event: Literal["user.registered", "user.disabled", "user.enabled", "user.updated"]
    id: uuid.UUID
    email: str = Field(min_length=1, max_length=320, pattern=NO_NUL)
    name: Name
    role: Role
    is_active: bool
    # Absent from events written before verification existed: not verified.
    email_verified: bool = False
    created_at: Annotated[AwareDatetime, AfterValidator(in_utc)]
    version: int = Field(
        ge=1, le=MAX_BIGINT, description="Microseconds since the epoch; newer wins"
    )
