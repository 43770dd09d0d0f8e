"""auth's errors, each with its HTTP status and stable `code`."""

from __future__ import annotations

from typing import Any

from platform_common.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ProblemError,
    Unauthorized,
)


class EmailTaken(Conflict, code="email_taken", title="Email already registered"): ...


class WeakPassword(
    ProblemError, status=422, code="weak_password", title="Password does not meet the policy"
):
    def __init__(self, reason: str, field: str = "password") -> None:
        errors: list[dict[str, Any]] = [{"field": field, "message": reason, "type": self.code}]
        super().__init__(reason, extra={"errors": errors})


class InvalidCredentials(Unauthorized, code="invalid_credentials", title="Invalid credentials"):
    def __init__(self, detail: str = "The email or password is incorrect.") -> None:
        super().__init__(detail)


class WrongPassword(Forbidden, code="invalid_credentials", title="Invalid credentials"):
    """The caller is authenticated, but the password it confirmed with is wrong."""


class AccountDisabled(Forbidden, code="account_disabled", title="Account disabled"): ...


class InvalidRefreshToken(
    Unauthorized, code="invalid_refresh_token", title="Invalid refresh token"
): ...


class RefreshTokenReused(InvalidRefreshToken):
    """The session has been ended because of the reuse; that must be committed."""

    commit_changes = True


class SessionNotFound(NotFound, code="not_found"): ...


class UserNotFound(NotFound, code="user_not_found"): ...


class InvalidClient(Unauthorized, code="invalid_client"): ...


class LastAdmin(
    Conflict,
    code="last_admin",
    title="The last platform admin",
    detail="This is the last active platform admin: make another admin first.",
): ...


class LastOwnerOfOrgs(
    Conflict,
    code="last_owner",
    title="The last owner of organizations",
    detail="The account is the last owner of organizations that have other members: make "
    "another member an owner of each, or delete them, first.",
):
    def __init__(self, slugs: list[str]) -> None:
        super().__init__(extra={"orgs": slugs})


class AccountGone(Unauthorized, code="invalid_token", title="Invalid token"):
    """The token's account has just been deleted (by a concurrent request)."""


class OrgNotFound(
    NotFound,
    code="org_not_found",
    title="Organization not found",
    detail="No such organization, or the caller is not a member of it.",
): ...


class PersonalTokenNotFound(NotFound, code="not_found"): ...


class InvalidAccountToken(
    ProblemError,
    status=400,
    code="invalid_token",
    title="Invalid token",
    detail="The token is not valid.",
):
    """A mailed token (verification, reset, email change) that does not exist for this use."""


class AccountTokenExpired(
    ProblemError,
    status=410,
    code="token_expired",
    title="Token expired",
    detail="The token has expired or has already been used.",
): ...


class AlreadyVerified(
    Conflict,
    code="already_verified",
    title="Already verified",
    detail="This email address is already verified.",
): ...


class EmailNotVerified(
    AccountDisabled,
    code="email_not_verified",
    title="Email not verified",
    detail="Verify the email address of this account before signing in.",
): ...
