"""users' HTTP API: the public routes (under /api/v1/users) and the internal one for auth.

Handlers are thin: dependencies in, one service call out, `response_model` shapes.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from starlette.convertors import StringConvertor, register_url_convertor

from platform_common.db import ReadSessionDep, SessionDep
from platform_common.pagination import Page, PageParamsDep
from platform_common.security import (
    CurrentPrincipal,
    CurrentUser,
    RequireAdmin,
    require_user_scope,
)
from platform_common.text import NO_NUL
from users.dependencies import ProvisionCaller, UsersServiceDep
from users.schemas import (
    LookupRequest,
    MeRead,
    ProfileRead,
    ProfileUpdate,
    UserEvent,
    UserSummary,
)


class UserIdSegment(StringConvertor):
    """A path segment in the place of a user id: anything but the names of the routes beside
    it. So `GET /users/lookup` (lookup is POST only) answers 405 instead of reaching
    `GET /users/{user_id}` as a malformed id, while a malformed id still answers 422."""

    regex = r"(?!lookup$)[^/]+"


register_url_convertor("user_id", UserIdSegment())

router = APIRouter(prefix="/api/v1/users", tags=["users"])
internal_router = APIRouter(prefix="/internal/v1/users", tags=["internal"])

# A personal access token needs these scopes here (platform_common.permissions).
READS_PROFILES = [Depends(require_user_scope("profile:read"))]
WRITES_PROFILE = [Depends(require_user_scope("profile:write"))]
PAT_SCOPE_REFUSED: dict[int | str, dict[str, Any]] = {
    403: {"description": "`insufficient_scope`: a personal access token without the scope"}
}

ORGS_UNAVAILABLE_WARNING = '199 - "organizations unavailable"'

ME_DESCRIPTION = """
The caller's profile and the organizations the caller belongs to.

`organizations` comes from the orgs service, asked with the caller's own token (at most the
first 100). **When orgs is down, slow (over 2 s) or failing, this endpoint degrades instead
of failing**: it answers 200 with `"organizations": null` and the header
`Warning: 199 - "organizations unavailable"`. The profile is this service's own data and
stays available; `null` (unknown) is distinct from `[]` (no organizations).

A profile exists for every registered account; if auth's registration event has not reached
this service yet, the profile is created here from the token's `email` and `name`.
"""


@router.get(
    "/me",
    response_model=MeRead,
    description=ME_DESCRIPTION,
    dependencies=READS_PROFILES,
    responses={
        **PAT_SCOPE_REFUSED,
        200: {
            "headers": {
                "Warning": {
                    "description": 'Present as `199 - "organizations unavailable"` when '
                    "`organizations` is null",
                    "schema": {"type": "string"},
                }
            }
        },
    },
)
async def get_me(user: CurrentUser, users: UsersServiceDep, response: Response) -> Any:
    me = await users.me(user)
    if me.organizations is None:
        response.headers["Warning"] = ORGS_UNAVAILABLE_WARNING
    profile = (
        me.profile
        if isinstance(me.profile, dict)
        else ProfileRead.model_validate(me.profile).model_dump()
    )
    return {**profile, "organizations": me.organizations}


@router.patch(
    "/me", response_model=ProfileRead, dependencies=WRITES_PROFILE, responses=PAT_SCOPE_REFUSED
)
async def update_me(
    data: ProfileUpdate, user: CurrentUser, db: SessionDep, users: UsersServiceDep
) -> Any:
    """Change the caller's name (the only field a user edits; the rest belongs to auth)."""
    return await users.update_me(db, user, data)


@router.post(
    "/lookup",
    response_model=list[UserSummary],
    dependencies=READS_PROFILES,
    responses=PAT_SCOPE_REFUSED,
)
async def lookup(
    data: LookupRequest, _: CurrentPrincipal, db: ReadSessionDep, users: UsersServiceDep
) -> Any:
    """Names and emails for 1 to 100 ids, for any authenticated caller (users or services).

    Answers the ids that exist, in the order asked, each once; unknown ids are left out.
    An empty list or more than 100 ids is a 422.
    """
    return await users.lookup(db, data.ids)


@router.get(
    "", response_model=Page[ProfileRead], dependencies=READS_PROFILES, responses=PAT_SCOPE_REFUSED
)
async def list_users(
    _: RequireAdmin,
    db: SessionDep,
    users: UsersServiceDep,
    page: PageParamsDep,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=NO_NUL,
            description="Case-insensitive substring of the name or email",
        ),
    ] = None,
    is_active: Annotated[bool | None, Query(description="Only active or disabled users")] = None,
) -> Any:
    """Platform admins: every profile, oldest first."""
    rows, total = await users.list_profiles(
        db, q=q, is_active=is_active, offset=page.offset, limit=page.limit
    )
    return Page[ProfileRead].build([ProfileRead.model_validate(r) for r in rows], total, page)


@router.get(
    "/{user_id:user_id}",
    response_model=ProfileRead,
    dependencies=READS_PROFILES,
    responses=PAT_SCOPE_REFUSED,
)
async def get_user(user_id: uuid.UUID, user: CurrentUser, users: UsersServiceDep) -> Any:
    """The caller's own profile, or anyone's for a platform admin; 404 otherwise."""
    return await users.get_profile(user, user_id)


@internal_router.put(
    "/{user_id}",
    response_model=ProfileRead,
    responses={410: {"description": "`user_deleted`: the account has been deleted"}},
)
async def apply_user_event(
    user_id: uuid.UUID,
    event: UserEvent,
    _: ProvisionCaller,
    db: SessionDep,
    users: UsersServiceDep,
) -> Any:
    """auth's outbox relay: create the profile, or apply a newer event (idempotent);
    410 `user_deleted` for a deleted account (nothing is applied)."""
    return await users.apply_event(db, user_id, event)


@internal_router.delete(
    "/{user_id}",
    status_code=204,
    summary="Delete a profile (auth's outbox: user.deleted)",
)
async def delete_user(
    user_id: uuid.UUID, _: ProvisionCaller, db: SessionDep, users: UsersServiceDep
) -> None:
    """auth's outbox relay, once the account is deleted: the profile is gone (404, absent
    from lookups and lists) and later events about it answer 410 `user_deleted`. 204 again
    for a replay."""
    await users.delete_account(db, user_id)
