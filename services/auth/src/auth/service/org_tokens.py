"""Org-scoped access tokens: "this user, acting in this organization, with these permissions".

```
POST /org-token {org}
  -> t = Redis' clock (ms), read first
  -> orgs: GET /internal/v1/orgs/memberships/{user}?org=...   (service credentials, timeout,
                                                               request id, trace context)
  -> token: the user's claims + org_id, org_slug, org_role, permissions, org_checked_at = t
```

Reading the time before asking orgs is what makes revocation race-free: orgs marks a
changed membership with Redis' time after its commit, so a lookup that could still have seen
the old role started before the mark, and its token is refused (platform_common.revocation).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from auth.clients.orgs import OrgsClient
from auth.config import AuthSettings
from auth.errors import AccountDisabled, OrgNotFound
from auth.repository import UserRepository
from auth.schemas import OrgToken, OrgTokenOrg
from auth.tokens import OrgClaims, TokenIssuer
from platform_common.clock import utcnow
from platform_common.permissions import permissions_for
from platform_common.revocation import RevocationStore
from platform_common.verification import Principal


class OrgTokenService:
    def __init__(
        self,
        settings: AuthSettings,
        *,
        issuer: TokenIssuer,
        orgs: OrgsClient,
        revocations: RevocationStore,
    ) -> None:
        self.issuer = issuer
        self.orgs = orgs
        self.revocations = revocations
        self.ttl = timedelta(seconds=settings.org_token_ttl_seconds)

    async def issue(self, db: AsyncSession, caller: Principal, org: str) -> OrgToken:
        assert caller.session_id is not None
        user = await UserRepository(db).get(caller.user_id)
        if user is None or not user.is_active:
            raise AccountDisabled("This account is not active.")
        checked_at = await self.revocations.server_time_ms()
        membership = await self.orgs.membership(user.id, org)
        if membership is None:
            raise OrgNotFound
        token = self.issuer.user_token(
            user_id=user.id,
            session_id=uuid.UUID(caller.session_id),
            role=user.role,
            email=user.email,
            email_verified=user.email_verified,
            name=user.name,
            org=OrgClaims(membership.org_id, membership.org_slug, membership.role, checked_at),
            now=utcnow(),
            ttl=self.ttl,
        )
        return OrgToken(
            access_token=token,
            expires_in=int(self.ttl.total_seconds()),
            org=OrgTokenOrg(
                id=membership.org_id,
                slug=membership.org_slug,
                role=membership.role,
                permissions=sorted(permissions_for(membership.role)),
            ),
        )
