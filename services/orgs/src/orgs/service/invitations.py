"""Invitations: issuing one (its token shown once, only its hash stored), listing the
pending ones, revoking, and accepting (single use: one conditional UPDATE claims it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

from sqlalchemy.ext.asyncio import AsyncSession

from orgs.cache import UserOrgsInvalidation
from orgs.config import OrgsSettings
from orgs.errors import (
    AlreadyMember,
    EmailMismatch,
    InvitationAlreadyAccepted,
    InvitationExpired,
    InvitationNotFound,
    InvitationRevoked,
    InvitationUsed,
)
from orgs.events import Actor, Target, record_event, record_org_event
from orgs.models import Invitation, Membership
from orgs.repository import InvitationRepository, MembershipRepository
from orgs.roles import OrgRole, check_grant
from orgs.service.account_deletion import refuse_deleted_account
from orgs.service.members import MemberView
from orgs.service.organizations import OrgAccess
from platform_common.clock import utcnow
from platform_common.mail import Mailer
from platform_common.opaque_tokens import hash_token, new_token
from platform_common.pagination import PageParams
from platform_common.security import Principal


@dataclass(frozen=True)
class InvitationIssued:
    invitation: Invitation
    token: str

    def __getattr__(self, name: str) -> Any:
        # The response model reads the invitation's own fields through this wrapper.
        return getattr(self.invitation, name)


class InvitationService:
    def __init__(
        self,
        db: AsyncSession,
        settings: OrgsSettings,
        user_orgs: UserOrgsInvalidation,
        mailer: Mailer | None = None,
    ) -> None:
        self.mailer = mailer
        self.db = db
        self.invitations = InvitationRepository(db)
        self.members = MembershipRepository(db)
        self.settings = settings
        self.user_orgs = user_orgs

    async def invite(self, access: OrgAccess, email: str, role: OrgRole) -> InvitationIssued:
        check_grant(access.effective_role, role)
        token = new_token()
        now = utcnow()
        invitation = Invitation(
            id=uuid.uuid4(),
            org_id=access.org.id,
            email=email.lower(),
            role=role.value,
            token_hash=token.hash,
            invited_by=access.principal.user_id,
            created_at=now,
            expires_at=now + timedelta(days=self.settings.invitation_ttl_days),
        )
        await self.invitations.add(invitation)
        if self.mailer is not None:
            # Queued with the invitation: the invitee is mailed exactly when it exists.
            await self.mailer.enqueue(
                self.db,
                invitation.email,
                "org_invitation",
                email=invitation.email,
                org_name=access.org.name,
                role=invitation.role,
                expires_at=invitation.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
                link=self.mailer.link(self.settings.invitation_accept_path, token.value),
            )
        record_org_event(
            self.db,
            "invitation.created",
            access.principal,
            access.org,
            _invitation_target(invitation),
            invitation_id=str(invitation.id),
            email=invitation.email,
            role=invitation.role,
        )
        return InvitationIssued(invitation, token.value)

    async def list_pending(
        self, access: OrgAccess, page: PageParams
    ) -> tuple[list[Invitation], int]:
        return await self.invitations.list_pending(
            access.org.id, utcnow(), offset=page.offset, limit=page.limit
        )

    async def revoke(self, access: OrgAccess, invitation_id: uuid.UUID) -> None:
        if await self.invitations.revoke(access.org.id, invitation_id, utcnow()):
            revoked = await self.invitations.get_in_org(access.org.id, invitation_id)
            assert revoked is not None
            record_org_event(
                self.db,
                "invitation.revoked",
                access.principal,
                access.org,
                _invitation_target(revoked),
                invitation_id=str(revoked.id),
                email=revoked.email,
                role=revoked.role,
            )
            return
        invitation = await self.invitations.get_in_org(access.org.id, invitation_id)
        if invitation is None:
            raise InvitationNotFound
        if invitation.accepted_at is not None:
            raise InvitationAlreadyAccepted("The invitation has already been accepted.")
        # Already revoked: revoking again changes nothing (idempotent 204).

    async def accept(self, principal: Principal, token: str) -> MemberView:
        invitation = await self.invitations.get_by_token_hash(hash_token(token))
        if invitation is None:
            raise InvitationNotFound
        if (principal.email or "").lower() != invitation.email:
            raise EmailMismatch("The invitation was sent to another email address.")
        await refuse_deleted_account(self.db, principal.user_id)
        if not await self.invitations.claim(invitation.id, principal.user_id, utcnow()):
            _raise_unusable(await self.invitations.get_in_org(invitation.org_id, invitation.id))
        membership = Membership(
            org_id=invitation.org_id, user_id=principal.user_id, role=invitation.role
        )
        # On failure the request rolls back, claim included: the invitation stays open.
        if not await self.members.add(membership):
            raise AlreadyMember("You are already a member of this organization.")
        slug = await self.invitations.org_slug(invitation.org_id)
        actor = Actor.user(principal.user_id)
        common = {"slug": slug, "user_id": str(principal.user_id), "role": invitation.role}
        record_event(
            self.db,
            type="invitation.accepted",
            actor=actor,
            org_id=invitation.org_id,
            target=_invitation_target(invitation),
            data={**common, "invitation_id": str(invitation.id), "email": invitation.email},
        )
        record_event(
            self.db,
            type="member.added",
            actor=actor,
            org_id=invitation.org_id,
            target=Target(type="user", id=str(principal.user_id)),
            data={**common, "invitation_id": str(invitation.id)},
        )
        self.user_orgs.after_commit(self.db, [principal.user_id])
        # The caller's own name and email come with its token: no call to users needed.
        return MemberView(
            principal.user_id,
            principal.name,
            principal.email,
            OrgRole(membership.role),
            membership.joined_at,
        )


def _raise_unusable(invitation: Invitation | None) -> NoReturn:
    if invitation is None:
        raise InvitationNotFound
    if invitation.revoked_at is not None:
        raise InvitationRevoked("The invitation has been revoked.")
    if invitation.accepted_at is not None:
        raise InvitationUsed("The invitation has already been used.")
    raise InvitationExpired("The invitation has expired.")


def _invitation_target(invitation: Invitation) -> Target:
    return Target(type="invitation", id=str(invitation.id))
