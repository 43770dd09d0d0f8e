"""Request and response bodies of the auth API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from platform_common.permissions import PAT_SCOPES
from platform_common.text import NO_NUL

PatScope = Literal[PAT_SCOPES]  # type: ignore[valid-type]


class UserCreate(BaseModel):
    email: EmailStr = Field(max_length=320)
    # The policy (8 to 128 characters, not common, not the email) is checked by the service,
    # which answers 422 `weak_password`; the schema only documents the limits.
    password: str = Field(
        max_length=4096,
        description="8 to 128 characters, not a common one",
        json_schema_extra={"minLength": 8, "maxLength": 128},
    )
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    role: Literal["user", "admin"]
    is_active: bool
    email_verified: bool = False
    created_at: datetime


DEVICE_HELP = (
    "The `device_token` of an earlier successful login to this account, if the client kept "
    "it: failed logins from other clients then never delay this one."
)


class LoginRequest(BaseModel):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=4096)
    device_token: str | None = Field(default=None, max_length=512, description=DEVICE_HELP)


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=512)


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=4096)
    new_password: str = Field(
        max_length=4096,
        description="8 to 128 characters, not a common one",
        json_schema_extra={"minLength": 8, "maxLength": 128},
    )


class AccountDeletion(BaseModel):
    current_password: str = Field(min_length=1, max_length=4096)


class TokenRequest(BaseModel):
    """The form of `POST /token`. Every field is optional here: what a grant lacks is an RFC
    6749 `invalid_request`, never a 422."""

    grant_type: str | None = None
    username: str | None = None
    password: str | None = None
    refresh_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    scope: str | None = None
    device_token: str | None = Field(default=None, description=DEVICE_HELP)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires")


class LoginTokens(TokenPair):
    device_token: str = Field(
        description="Keep it and send it with the next login to this account (the login body "
        "or the `/token` form): failed logins from other clients never delay a client that "
        "shows it (OWASP's device cookies)."
    )


class ServiceToken(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a token type, not a secret
    expires_in: int
    scope: str


class SessionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    current: bool = Field(default=False, description="This is the session of the caller's token")


class OpenIDConfiguration(BaseModel):
    issuer: str
    jwks_uri: str
    token_endpoint: str
    grant_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    id_token_signing_alg_values_supported: list[str]
    response_types_supported: list[str]
    subject_types_supported: list[str]
    scopes_supported: list[str]
    introspection_endpoint: str
    revocation_endpoint: str


class OrgTokenRequest(BaseModel):
    org: str = Field(
        min_length=1, max_length=200, pattern=NO_NUL, description="The org's slug or id"
    )


class OrgTokenOrg(BaseModel):
    id: uuid.UUID
    slug: str
    role: Literal["owner", "admin", "member", "viewer"]
    permissions: list[str] = Field(description="What the token may do in the org")


class OrgToken(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a token type, not a secret
    expires_in: int = Field(description="Seconds until the token expires")
    org: OrgTokenOrg


SCOPES_HELP = (
    "What the token may do, narrowing its owner's rights; null: everything its owner may, "
    "except the account's own security (tokens, password, email, sessions, deletion), which "
    "no personal access token may touch."
)


class PersonalTokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=NO_NUL)
    expires_in_days: int = Field(ge=1, le=365)
    scopes: list[PatScope] | None = Field(default=None, max_length=32, description=SCOPES_HELP)


class PersonalTokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    scopes: list[str] | None = Field(description=SCOPES_HELP)
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None = Field(description="Recorded at most once a minute")


class PersonalTokenCreated(BaseModel):
    id: uuid.UUID
    name: str
    token: str = Field(description="`ipt_...`: shown only in this answer, stored as a hash")
    scopes: list[str] | None = Field(description=SCOPES_HELP)
    created_at: datetime
    expires_at: datetime


class StandInToken(BaseModel):
    """auth's answer to a service asking it to vouch for a personal access token."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a token type, not a secret
    expires_in: int


class TokenActionRequest(BaseModel):
    """The form of `POST /introspect` (RFC 7662) and `POST /revoke` (RFC 7009)."""

    token: str = Field(min_length=1, max_length=4096)
    token_type_hint: str | None = Field(
        default=None, max_length=64, description="Ignored: every kind of token is recognised"
    )
    client_id: str | None = Field(default=None, max_length=200)
    client_secret: str | None = Field(default=None, max_length=4096)


class IntrospectionAnswer(BaseModel):
    """RFC 7662 section 2.2: `active`, and when active the token's claims."""

    model_config = ConfigDict(extra="allow")

    active: bool
    token_kind: (
        Literal["access_token", "org_access_token", "personal_access_token", "refresh_token"] | None
    ) = None
