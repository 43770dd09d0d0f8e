"""RFC 7662 token introspection and RFC 7009 token revocation, for every kind of token auth
hands out.

```
token                  recognised by        active when                    revoked by
access token (JWT:     three dot-separated  it verifies as at any service  ending its session
user, org, service)    parts                (signature, exp, revocation)   (service: no-op)
personal access token  the `ipt_` prefix    known, unexpired, owner active deleting it
refresh token          anything else        not rotated, session live      ending its session
```

Introspection is for service clients only. Revocation is for service clients and for the
token's owner (a login session's token: never a personal access token); whatever the token,
the answer is 200, and a token the caller may not revoke is left alone, so the answer tells
nothing about tokens that are not the caller's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from jose import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from auth.repository import RefreshTokenRepository, UserSessionRepository
from auth.service.personal_tokens import PersonalTokenService
from auth.service.sessions import SessionService
from platform_common.clock import utcnow
from platform_common.opaque_tokens import hash_token
from platform_common.permissions import PAT_SCOPES
from platform_common.verification import PAT_PREFIX, InvalidToken, TokenVerifier

INACTIVE: dict[str, Any] = {"active": False}
# The claims of a JWT worth answering (RFC 7662 section 2.2 and the platform's own).
ANSWERED_CLAIMS = (
    "sub",
    "scope",
    "exp",
    "iat",
    "nbf",
    "iss",
    "aud",
    "jti",
    "sid",
    "role",
    "email",
    "name",
    "org_id",
    "org_slug",
    "org_role",
    "permissions",
)


@dataclass(frozen=True)
class Revoker:
    """Who asks for a revocation: a service client, or a user (its id)."""

    user_id: uuid.UUID | None


def _timestamp(value: Any) -> int:
    return int(value.timestamp())


class TokenIntrospection:
    def __init__(self, *, sessions: SessionService, personal_tokens: PersonalTokenService) -> None:
        self.sessions = sessions
        self.personal_tokens = personal_tokens

    async def introspect(
        self, db: AsyncSession, verifier: TokenVerifier, token: str
    ) -> dict[str, Any]:
        if token.startswith(PAT_PREFIX):
            return await self._personal_token(db, token)
        if token.count(".") == 2:
            return await self._access_token(verifier, token)
        return await self._refresh_token(db, token)

    async def _access_token(self, verifier: TokenVerifier, token: str) -> dict[str, Any]:
        try:
            principal = await verifier.verify(token)
        except InvalidToken:
            return INACTIVE
        claims = jwt.get_unverified_claims(token)  # verified just above
        answer = {name: claims[name] for name in ANSWERED_CLAIMS if name in claims}
        kind = "org_access_token" if principal.org is not None else "access_token"
        return {"active": True, "token_type": "Bearer", "token_kind": kind, **answer}

    async def _personal_token(self, db: AsyncSession, token: str) -> dict[str, Any]:
        pat = await self.personal_tokens.find(db, token)
        if pat is None:
            return INACTIVE
        return {
            "active": True,
            "token_type": "Bearer",
            "token_kind": "personal_access_token",
            "sub": str(pat.user_id),
            "scope": " ".join(sorted(pat.scopes if pat.scopes is not None else PAT_SCOPES)),
            "iat": _timestamp(pat.created_at),
            "exp": _timestamp(pat.expires_at),
            "pat_id": str(pat.id),
            "name": pat.name,
        }

    async def _refresh_token(self, db: AsyncSession, token: str) -> dict[str, Any]:
        now = utcnow()
        stored = await RefreshTokenRepository(db).get_by_hash(hash_token(token))
        if stored is None or stored.rotated_at is not None or stored.expires_at <= now:
            return INACTIVE
        session = await UserSessionRepository(db).get_live(stored.session_id, now)
        if session is None:
            return INACTIVE
        return {
            "active": True,
            "token_type": "refresh_token",
            "token_kind": "refresh_token",
            "sub": str(session.user_id),
            "sid": str(session.id),
            "iat": _timestamp(stored.created_at),
            "exp": _timestamp(stored.expires_at),
        }

    async def revoke(
        self, db: AsyncSession, verifier: TokenVerifier, token: str, by: Revoker
    ) -> None:
        if token.startswith(PAT_PREFIX):
            pat = await self.personal_tokens.find(db, token)
            if pat is not None and by.user_id in (None, pat.user_id):
                await self.personal_tokens.revoke(db, token)
            return
        if token.count(".") == 2:
            try:
                principal = await verifier.verify(token)
            except InvalidToken:
                return  # expired, forged or already revoked: nothing to do
            if principal.session_id is None or principal.is_service:
                return  # service tokens are stateless: they expire
            user_id, session_id = principal.user_id, uuid.UUID(principal.session_id)
        else:
            stored = await RefreshTokenRepository(db).get_by_hash(hash_token(token))
            session = await UserSessionRepository(db).get(stored.session_id) if stored else None
            if session is None:
                return
            user_id, session_id = session.user_id, session.id
        if by.user_id in (None, user_id):
            await self.sessions.end_sessions(
                db, user_id, reason="revoked", session_ids=[session_id]
            )
