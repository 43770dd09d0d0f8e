"""orgs' HTTP API (under /api/v1/orgs). Handlers are thin: dependencies in, one call out.

Route order matters: `/invitations/{token}/accept` is declared before the `/{slug}/...`
routes so that it can never be read as an organization's path.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, status

from orgs.dependencies import (
    AdminAccess,
    InvitationServiceDep,
    MemberAccess,
    MemberServiceDep,
    OrganizationServiceDep,
    OwnerAccess,
    ViewerAccess,
)
from orgs.schemas import (
    InvitationCreate,
    InvitationCreated,
    InvitationRead,
    MemberCreate,
    MemberRead,
    MemberUpdate,
    OrgCreate,
    OrgDetail,
    OrgRead,
    OrgUpdate,
)
from platform_common.pagination import Page, PageParamsDep
from platform_common.security import CurrentUser

router = APIRouter(prefix="/api/v1/orgs", tags=["orgs"])

_USERS_DOWN: dict[int | str, dict[str, Any]] = {
    503: {"description": "`dependency_unavailable`: the users service is unreachable or failing"},
    504: {"description": "`dependency_timeout`: the users service did not answer in time"},
}


@router.post(
    "/invitations/{token}/accept",
    status_code=status.HTTP_201_CREATED,
    response_model=MemberRead,
    tags=["invitations"],
    summary="Accept an invitation",
    description=(
        "Joins the caller to the invitation's org with the invited role. The caller's token "
        "email must match the invited email (case-insensitive), else 403 `email_mismatch`. "
        "An invitation is single-use: a used one answers 410 `invitation_used`, a revoked "
        "one 410 `invitation_revoked`, an expired one 410 `invitation_expired`; an unknown "
        "token 404 `invitation_not_found`. Of two concurrent accepts one wins. A caller who "
        "is already a member gets 409 `already_member` and the invitation stays open."
    ),
    responses={
        403: {"description": "email_mismatch"},
        404: {"description": "invitation_not_found"},
        409: {"description": "already_member"},
        410: {"description": "invitation_used, invitation_revoked or invitation_expired"},
    },
)
async def accept_invitation(
    token: str, user: CurrentUser, invitations: InvitationServiceDep
) -> Any:
    return await invitations.accept(user, token)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OrgRead,
    summary="Create an organization",
    description="The caller becomes its owner.",
    responses={409: {"description": "slug_taken"}},
)
async def create_org(data: OrgCreate, user: CurrentUser, orgs: OrganizationServiceDep) -> Any:
    return await orgs.create(user, data.name, data.slug)


@router.get(
    "",
    response_model=Page[OrgRead],
    summary="List the caller's organizations",
    description="Each with the caller's `role`, ordered by slug.",
)
async def list_orgs(user: CurrentUser, orgs: OrganizationServiceDep, page: PageParamsDep) -> Any:
    items, total = await orgs.list_for(user, page)
    return Page[OrgRead].build([OrgRead.model_validate(item) for item in items], total, page)


@router.get(
    "/{slug}",
    response_model=OrgDetail,
    summary="Get an organization",
    description=(
        "For the roles member and above (a viewer gets 403, as the API contract says "
        "`member+`); non-members get 404."
    ),
)
async def get_org(access: MemberAccess, orgs: OrganizationServiceDep) -> Any:
    return await orgs.get(access)


@router.patch("/{slug}", response_model=OrgDetail, summary="Rename an organization (admin+)")
async def update_org(data: OrgUpdate, access: AdminAccess, orgs: OrganizationServiceDep) -> Any:
    return await orgs.rename(access, data.name)


@router.delete(
    "/{slug}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an organization (owner)",
    description="Its memberships and invitations are deleted with it.",
)
async def delete_org(access: OwnerAccess, orgs: OrganizationServiceDep) -> None:
    await orgs.delete(access)


@router.get(
    "/{slug}/members",
    response_model=Page[MemberRead],
    tags=["members"],
    summary="List members (viewer+)",
    description=(
        "Names and emails come from the users service, in one batched lookup per page, made "
        "with the caller's token. When users cannot answer, this endpoint fails rather than "
        "answering without names: 503 `dependency_unavailable` when users is unreachable or "
        "failing, 504 `dependency_timeout` when it does not answer within the configured "
        "timeout (`ORGS_HTTP_TIMEOUT_SECONDS`, 2 s by default). A member the users service "
        "no longer knows is listed with null `name` and `email`."
    ),
    responses=_USERS_DOWN,
)
async def list_members(access: ViewerAccess, members: MemberServiceDep, page: PageParamsDep) -> Any:
    items, total = await members.list_members(access, page)
    return Page[MemberRead].build([MemberRead.model_validate(item) for item in items], total, page)


@router.post(
    "/{slug}/members",
    status_code=status.HTTP_201_CREATED,
    response_model=MemberRead,
    tags=["members"],
    summary="Add a member (admin+)",
    description=(
        "The user must exist in the users service (404 `user_not_found` otherwise). Nobody "
        "grants a role above their own, and only an owner grants `owner`. Of two concurrent "
        "adds of one user, one gets 201 and the other 409 `already_member`."
    ),
    responses={
        404: {"description": "not_found or user_not_found"},
        409: {"description": "already_member"},
        **_USERS_DOWN,
    },
)
async def add_member(data: MemberCreate, access: AdminAccess, members: MemberServiceDep) -> Any:
    return await members.add(access, data.user_id, data.role)


@router.patch(
    "/{slug}/members/{user_id}",
    response_model=MemberRead,
    tags=["members"],
    summary="Change a member's role (admin+)",
    description=(
        "Nobody grants a role above their own; only an owner grants `owner` or changes an "
        "owner's role. 409 `last_owner` when the change would leave the org without an owner, "
        "whatever concurrent changes run at the same time. The member's name and email come "
        "from the users service (503/504 when it cannot answer; nothing is changed then)."
    ),
    responses={404: {"description": "member_not_found"}, 409: {"description": "last_owner"}},
)
async def change_member_role(
    user_id: uuid.UUID, data: MemberUpdate, access: AdminAccess, members: MemberServiceDep
) -> Any:
    return await members.change_role(access, user_id, data.role)


@router.delete(
    "/{slug}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["members"],
    summary="Remove a member (admin+, or the member itself)",
    description=(
        "Any member may leave. Removing an owner takes an owner. 409 `last_owner` when it "
        "would leave the org without an owner."
    ),
    responses={404: {"description": "member_not_found"}, 409: {"description": "last_owner"}},
)
async def remove_member(
    user_id: uuid.UUID, access: ViewerAccess, members: MemberServiceDep
) -> None:
    await members.remove(access, user_id)


@router.post(
    "/{slug}/invitations",
    status_code=status.HTTP_201_CREATED,
    response_model=InvitationCreated,
    tags=["invitations"],
    summary="Invite someone by email (admin+)",
    description=(
        "The answer holds the invitation `token`, shown only this once (only its SHA-256 is "
        "stored). The invitation is single-use and expires after `ORGS_INVITATION_TTL_DAYS` "
        "(7 by default). Nobody invites with a role above their own."
    ),
)
async def create_invitation(
    data: InvitationCreate, access: AdminAccess, invitations: InvitationServiceDep
) -> Any:
    return await invitations.invite(access, data.email, data.role)


@router.get(
    "/{slug}/invitations",
    response_model=Page[InvitationRead],
    tags=["invitations"],
    summary="List pending invitations (admin+)",
    description="Invitations neither accepted, revoked nor expired; newest first; no tokens.",
)
async def list_invitations(
    access: AdminAccess, invitations: InvitationServiceDep, page: PageParamsDep
) -> Any:
    items, total = await invitations.list_pending(access, page)
    return Page[InvitationRead].build(
        [InvitationRead.model_validate(item) for item in items], total, page
    )


@router.delete(
    "/{slug}/invitations/{invitation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["invitations"],
    summary="Revoke an invitation (admin+)",
    description=(
        "Revoking an already revoked invitation is a no-op (204); an accepted one answers "
        "409 `invitation_accepted`; an unknown one 404 `invitation_not_found`."
    ),
    responses={
        404: {"description": "invitation_not_found"},
        409: {"description": "invitation_accepted"},
    },
)
async def revoke_invitation(
    invitation_id: uuid.UUID, access: AdminAccess, invitations: InvitationServiceDep
) -> None:
    await invitations.revoke(access, invitation_id)
