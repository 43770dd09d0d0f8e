"""The account's lifecycle by mail (under /api/v1/auth): verification, a forgotten password,
email change. The rules: auth.service.account_mail."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, status

from auth.dependencies import AccountMailDep, ClientInfoDep, SettingsDep, WakesOutbox
from auth.schemas_mail import Accepted, EmailChange, ForgotPassword, MailedToken, ResetPassword
from platform_common.db import SessionDep
from platform_common.security import CurrentSessionUser, CurrentUser

router = APIRouter(prefix="/api/v1/auth", tags=["account by mail"])

TOKEN_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "`invalid_token`: unknown, or a token for something else"},
    410: {"description": "`token_expired`: expired, already used, or superseded by a newer mail"},
}
FORGOT_ANSWER = Accepted(
    detail="If an account has this address, a mail with a link to reset its password is on its way."
)


@router.post(
    "/email/verify/request",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    summary="Mail a new verification link to the caller's address",
    responses={409: {"description": "`already_verified`"}},
)
async def request_verification(
    user: CurrentUser, db: SessionDep, account_mail: AccountMailDep
) -> Any:
    """A link with a single-use token (`AUTH_VERIFY_EMAIL_TOKEN_TTL_SECONDS`, 48 h); an
    earlier link stops working. Registration sends one already."""
    await account_mail.request_verification(db, user.user_id)
    return Accepted(detail="A verification mail is on its way.")


@router.post(
    "/email/verify",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Verify the address with the mailed token",
    responses=TOKEN_ERRORS,
    dependencies=[WakesOutbox],
)
async def verify_email(data: MailedToken, db: SessionDep, account_mail: AccountMailDep) -> None:
    """New access tokens carry `email_verified: true`; the profile at users says so within
    seconds."""
    await account_mail.verify(db, data.token)


@router.post(
    "/password/forgot",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    summary="Mail a password reset link",
    responses={429: {"description": "`rate_limited`: too many for this address or client"}},
)
async def forgot_password(
    data: ForgotPassword,
    db: SessionDep,
    account_mail: AccountMailDep,
    client: ClientInfoDep,
    settings: SettingsDep,
) -> Any:
    """The same answer, in the same time (at least `AUTH_PASSWORD_FORGOT_MIN_SECONDS`),
    whether an account has the address or not. The link's token works once, for 30 minutes
    (`AUTH_PASSWORD_RESET_TOKEN_TTL_SECONDS`). Throttled per address and per client."""
    started = time.monotonic()
    await account_mail.forgot_password(db, data.email, client)
    # Commit here rather than after the handler, so that the padding covers the commit too.
    await db.commit()
    await asyncio.sleep(
        max(0.0, settings.password_forgot_min_seconds - (time.monotonic() - started))
    )
    return FORGOT_ANSWER


@router.post(
    "/password/reset",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Set a new password with the mailed token",
    responses={**TOKEN_ERRORS, 422: {"description": "`weak_password` (the token stays usable)"}},
    dependencies=[WakesOutbox],
)
async def reset_password(data: ResetPassword, db: SessionDep, account_mail: AccountMailDep) -> None:
    """Every session of the account ends: its access tokens fail at every service within
    5 seconds, its refresh tokens at once."""
    await account_mail.reset_password(db, data.token, data.new_password)


@router.post(
    "/email/change",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    summary="Change the account's email (confirmed from the new address)",
    responses={
        403: {
            "description": "`insufficient_scope`: not a login session's token; "
            "`invalid_credentials`: the current password is wrong"
        },
        409: {"description": "`email_taken`"},
    },
)
async def change_email(
    data: EmailChange, user: CurrentSessionUser, db: SessionDep, account_mail: AccountMailDep
) -> Any:
    """**Accepts** a login session's access token only (a personal access token: 403
    `insufficient_scope`); a wrong `current_password` is 403 `invalid_credentials`. A
    confirmation link goes to the new address (1 h, `AUTH_EMAIL_CHANGE_TOKEN_TTL_SECONDS`),
    a notice to the current one; nothing changes until it is confirmed."""
    await account_mail.change_email(db, user.user_id, str(data.new_email), data.current_password)
    return Accepted(detail="A confirmation mail is on its way to the new address.")


@router.post(
    "/email/change/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Confirm an email change with the mailed token",
    responses={**TOKEN_ERRORS, 409: {"description": "`email_taken` meanwhile"}},
    dependencies=[WakesOutbox],
)
async def confirm_email_change(
    data: MailedToken, db: SessionDep, account_mail: AccountMailDep
) -> None:
    """The account logs in with the new address only; the profile and lookups at users
    show it within seconds. The new address counts as verified."""
    await account_mail.confirm_email_change(db, data.token)
