"""Request and response bodies of the orgs API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from orgs.roles import OrgRole
from platform_common.text import NO_NUL

SLUG_PATTERN = r"^[a-z0-9](-?[a-z0-9])*$"

Slug = Annotated[
    str,
    Field(
        min_length=2,
        max_length=63,
        pattern=SLUG_PATTERN,
        description="Lower-case letters, digits and single hyphens, 2 to 63 characters",
        examples=["acme-inc"],
    ),
]
OrgName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_NUL)
]


class OrgCreate(BaseModel):
    name: OrgName
    slug: Slug


class OrgUpdate(BaseModel):
    name: OrgName


class OrgRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    slug: str
    created_at: datetime
    role: OrgRole | None = Field(
        description="The caller's role in the org; null for a platform admin who is not a member"
    )


class OrgDetail(OrgRead):
    member_count: int


class MemberCreate(BaseModel):
    user_id: uuid.UUID
    role: OrgRole = OrgRole.MEMBER


class MemberUpdate(BaseModel):
    role: OrgRole


class MemberRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: uuid.UUID
    name: str | None = Field(description="From the users service; null if the user is gone")
    email: str | None = Field(description="From the users service; null if the user is gone")
    role: OrgRole
    joined_at: datetime


class InvitationCreate(BaseModel):
    email: EmailStr = Field(max_length=320)
    role: OrgRole = OrgRole.MEMBER


class InvitationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    role: OrgRole
    created_at: datetime
    expires_at: datetime


class InvitationCreated(InvitationRead):
    token: str = Field(
        description="Send this to the invitee; it is shown only once and never stored"
    )


class MembershipRead(BaseModel):
    """A user's membership, as auth reads it to issue an org-scoped token."""

    org_id: uuid.UUID
    org_slug: str
    role: OrgRole


class DeletionBlockers(BaseModel):
    """The orgs that block deleting an account: their slugs."""

    orgs: list[str]
