"""orgs' HTTP API (under /api/v1/orgs). Handlers are thin: dependencies in, one call out;
each handler's docstring is its endpoint's description in the OpenAPI document.

Route order matters: `/invitations/{token}/accept` is declared first, before the
`/{slug}/...` routes, so that it can never be read as an organization's path.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel

from orgs.dependencies import (
    AccountDeleter,
    AccountDeletionServiceDep,
    CanDeleteOrg,
    CanReadOrg,
    CanUpdateOrg,
    CanWriteInvitations,
    CanWriteMembers,
    InvitationServiceDep,
    MemberServiceDep,
    MembershipReader,
    MembersReadable,
    MemberViewsDep,
    OrganizationServiceDep,
    OrgReadable,
)
from orgs.schemas import (
    DeletionBlockers,
    InvitationCreate,
    InvitationCreated,
    InvitationRead,
    MemberCreate,
    MemberRead,
    MembershipRead,
    MemberUpdate,
    OrgCreate,
    OrgDetail,
    OrgRead,
    OrgUpdate,
)
from platform_common.pagination import Page, PageParams, PageParamsDep
from platform_common.security import CurrentUser, require_user_scope

# One router per resource, all under the one prefix so each route's full path reads as the
# API contract writes it; the app includes them in this order.
router = APIRouter(prefix="/api/v1/orgs", tags=["orgs"])
members_router = APIRouter(prefix="/api/v1/orgs", tags=["orgs", "members"])
invitations_router = APIRouter(prefix="/api/v1/orgs", tags=["orgs", "invitations"])
internal_router = APIRouter(prefix="/internal/v1/orgs", tags=["internal"])

ReadT = TypeVar("ReadT", bound=BaseModel)
Responses = dict[int | str, dict[str, Any]]

CREATED = status.HTTP_201_CREATED
NO_CONTENT = status.HTTP_204_NO_CONTENT


def _codes(by_status: dict[int, str]) -> Responses:
    """The OpenAPI `responses` for the problem codes an endpoint may answer, by status."""
    return {code: {"description": names} for code, names in by_status.items()}


_USERS_DOWN = _codes(
    {
        503: "`dependency_unavailable`: the users service is unreachable or failing",
        504: "`dependency_timeout`: the users service did not answer in time",
    }
)
_MEMBER_CHANGE = _codes({404: "member_not_found", 409: "last_owner"})


def _page(read: type[ReadT], items: Sequence[object], total: int, page: PageParams) -> Page[ReadT]:
    return Page[read].build([read.model_validate(item) for item in items], total, page)  # type: ignore[valid-type]


@router.post(
    "/invitations/{token}/accept",
    status_code=CREATED,
    response_model=MemberRead,
    tags=["invitations"],
    summary="Accept an invitation",
    dependencies=[Depends(require_user_scope("orgs:join"))],
    responses=_codes(
        {
            403: "email_mismatch, or `insufficient_scope`: a personal access token without "
            "`orgs:join`",
            404: "invitation_not_found",
            409: "already_member",
            410: "invitation_used, invitation_revoked or invitation_expired",
        }
    ),
)
async def accept_invitation(
    token: str, user: CurrentUser, invitations: InvitationServiceDep
) -> Any:
    """Joins the caller to the invitation's org with the invited role. The caller's token
    email must match the invited email (case-insensitive), else 403 `email_mismatch`.
    An invitation is single-use: a used one answers 410 `invitation_used`, a revoked
    one 410 `invitation_revoked`, an expired one 410 `invitation_expired`; an unknown
    token 404 `invitation_not_found`. Of two concurrent accepts one wins. A caller who
    is already a member gets 409 `already_member` and the invitation stays open."""
    return await invitations.accept(user, token)


# Organizations ------------------------------------------------------------------------


@router.post(
    "",
    status_code=CREATED,
    response_model=OrgRead,
    summary="Create an organization",
    dependencies=[Depends(require_user_scope("orgs:create"))],
    responses=_codes(
        {
            403: "`insufficient_scope`: a personal access token without `orgs:create`",
            409: "slug_taken",
        }
    ),
)
async def create_org(data: OrgCreate, user: CurrentUser, orgs: OrganizationServiceDep) -> Any:
    """The caller becomes its owner."""
    return await orgs.create(user, data.name, data.slug)


@router.get(
    "",
    response_model=Page[OrgRead],
    summary="List the caller's organizations",
    dependencies=[Depends(require_user_scope("org:read"))],
    responses=_codes({403: "`insufficient_scope`: a personal access token without `org:read`"}),
)
async def list_orgs(user: CurrentUser, orgs: OrganizationServiceDep, page: PageParamsDep) -> Any:
    """Each with the caller's `role`, ordered by slug."""
    items, total = await orgs.list_for(user, page)
    return _page(OrgRead, items, total, page)


@router.get("/{slug}", response_model=OrgDetail, summary="Get an organization")
async def get_org(org: OrgReadable) -> Any:
    """For any member, viewers included (the API contract: viewer+); non-members get 404."""
    return org.view


@router.patch("/{slug}", response_model=OrgDetail, summary="Rename an organization (admin+)")
async def update_org(data: OrgUpdate, access: CanUpdateOrg, orgs: OrganizationServiceDep) -> Any:
    return await orgs.rename(access, data.name)


@router.delete("/{slug}", status_code=NO_CONTENT, summary="Delete an organization (owner)")
async def delete_org(access: CanDeleteOrg, orgs: OrganizationServiceDep) -> None:
    """Its memberships and invitations are deleted with it."""
    await orgs.delete(access)


# Members ------------------------------------------------------------------------------


@members_router.get(
    "/{slug}/members",
    response_model=Page[MemberRead],
    summary="List members (viewer+)",
    responses=_USERS_DOWN,
)
async def list_members(org: MembersReadable, members: MemberViewsDep, page: PageParamsDep) -> Any:
    """Names and emails come from the users service, in one batched lookup per page, made
    with the caller's token. When users cannot answer, this endpoint fails rather than
    answering without names: 503 `dependency_unavailable` when users is unreachable or
    failing, 504 `dependency_timeout` when it does not answer within the configured
    timeout (`ORGS_HTTP_TIMEOUT_SECONDS`, 2 s by default). A member the users service
    no longer knows is listed with null `name` and `email`."""
    items, total = await members.page(org, page)
    return _page(MemberRead, items, total, page)


@members_router.post(
    "/{slug}/members",
    status_code=CREATED,
    response_model=MemberRead,
    summary="Add a member (admin+)",
    responses={
        **_codes({404: "not_found or user_not_found", 409: "already_member"}),
        **_USERS_DOWN,
    },
)
async def add_member(data: MemberCreate, access: CanWriteMembers, members: MemberServiceDep) -> Any:
    """The user must exist in the users service (404 `user_not_found` otherwise). Nobody
    grants a role above their own, and only an owner grants `owner`. Of two concurrent
    adds of one user, one gets 201 and the other 409 `already_member`."""
    return await members.add(access, data.user_id, data.role)


@members_router.patch(
    "/{slug}/members/{user_id}",
    response_model=MemberRead,
    summary="Change a member's role (admin+)",
    responses=_MEMBER_CHANGE,
)
async def change_member_role(
    user_id: uuid.UUID, data: MemberUpdate, access: CanWriteMembers, members: MemberServiceDep
) -> Any:
    """Nobody grants a role above their own; only an owner grants `owner` or changes an
    owner's role. 409 `last_owner` when the change would leave the org without an owner,
    whatever concurrent changes run at the same time. The member's name and email come
    from the users service (503/504 when it cannot answer; nothing is changed then)."""
    return await members.change_role(access, user_id, data.role)


@members_router.delete(
    "/{slug}/members/{user_id}",
    status_code=NO_CONTENT,
    summary="Remove a member (admin+, or the member itself)",
    responses=_MEMBER_CHANGE,
)
async def remove_member(user_id: uuid.UUID, access: CanReadOrg, members: MemberServiceDep) -> None:
    """Any member may leave (with `org:read`); removing someone else takes `members:write`
    (admin+). Removing an owner takes an owner. 409 `last_owner` when it
    would leave the org without an owner."""
    await members.remove(access, user_id)


# Invitations --------------------------------------------------------------------------


@invitations_router.post(
    "/{slug}/invitations",
    status_code=CREATED,
    response_model=InvitationCreated,
    summary="Invite someone by email (admin+)",
)
async def create_invitation(
    data: InvitationCreate, access: CanWriteInvitations, invitations: InvitationServiceDep
) -> Any:
    """The answer holds the invitation `token`, shown only this once (only its SHA-256 is
    stored). The invitation is single-use and expires after `ORGS_INVITATION_TTL_DAYS`
    (7 by default). Nobody invites with a role above their own."""
    return await invitations.invite(access, data.email, data.role)


@invitations_router.get(
    "/{slug}/invitations",
    response_model=Page[InvitationRead],
    summary="List pending invitations (admin+)",
)
async def list_invitations(
    access: CanWriteInvitations, invitations: InvitationServiceDep, page: PageParamsDep
) -> Any:
    """Invitations neither accepted, revoked nor expired; newest first; no tokens."""
    items, total = await invitations.list_pending(access, page)
    return _page(InvitationRead, items, total, page)


@invitations_router.delete(
    "/{slug}/invitations/{invitation_id}",
    status_code=NO_CONTENT,
    summary="Revoke an invitation (admin+)",
    responses=_codes({404: "invitation_not_found", 409: "invitation_accepted"}),
)
async def revoke_invitation(
    invitation_id: uuid.UUID, access: CanWriteInvitations, invitations: InvitationServiceDep
) -> None:
    """Revoking an already revoked invitation is a no-op (204); an accepted one answers
    409 `invitation_accepted`; an unknown one 404 `invitation_not_found`."""
    await invitations.revoke(access, invitation_id)


# Internal (not routed by the ingress) -------------------------------------------------


@internal_router.get(
    "/memberships/{user_id}",
    response_model=MembershipRead,
    summary="A user's membership in an org (auth's org-scoped tokens)",
    responses=_codes({404: "not_found: no such org, or the user is not a member"}),
)
async def get_membership(
    user_id: uuid.UUID,
    _: MembershipReader,
    orgs: OrganizationServiceDep,
    org: Annotated[str, Query(min_length=1, max_length=200, description="slug or id")],
) -> Any:
    """For auth only: a service token with `orgs:memberships:read`."""
    found, role = await orgs.membership_of(user_id, org)
    return MembershipRead(org_id=found.id, org_slug=found.slug, role=role)


@internal_router.get(
    "/users/{user_id}/deletion-blockers",
    response_model=DeletionBlockers,
    summary="The orgs that block deleting an account (auth's DELETE /me)",
)
async def get_deletion_blockers(
    user_id: uuid.UUID, _: AccountDeleter, deletion: AccountDeletionServiceDep
) -> Any:
    """For auth only: a service token with `orgs:users:delete`. `orgs` lists the slugs of
    the orgs the user is the only owner of while they have other members."""
    return DeletionBlockers(orgs=await deletion.blockers(user_id))


@internal_router.delete(
    "/users/{user_id}",
    status_code=NO_CONTENT,
    summary="Carry out an account's deletion (auth's outbox: user.deleted)",
)
async def delete_user(
    user_id: uuid.UUID, _: AccountDeleter, deletion: AccountDeletionServiceDep
) -> None:
    """For auth only: a service token with `orgs:users:delete`. The user's memberships go;
    an org it was the only member of is deleted; an org it was the only owner of (others
    having joined since auth's check) gets its highest-ranked, longest-standing other member
    as owner. The account can never be added again (404 `user_not_found`). Idempotent: 204
    again for a replay."""
    await deletion.delete_account(user_id)
