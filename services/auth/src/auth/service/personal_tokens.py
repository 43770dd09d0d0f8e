"""Personal access tokens: `ipt_` + 32 random bytes, stored as SHA-256, 1 to 365 days, with
optional scopes narrowing the owner's rights (platform_common.permissions.PAT_SCOPES).

Services never look them up themselves: they have auth vouch for one (`exchange`, behind
`POST /internal/v1/auth/personal-tokens/exchange`) and keep the answer a few seconds
(platform_common.verification). The answer is a minute-long signed token of the owner with
the PAT's scopes and `pat_id`. A deleted or expired PAT, or one whose owner is disabled, is
refused at the next exchange. `last_used_at` is written at most once a minute.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth.errors import PersonalTokenNotFound
from auth.events import Actor, Target, record_event
from auth.models import PersonalAccessToken
from auth.repository import PersonalAccessTokenRepository
from auth.schemas import PersonalTokenCreate, PersonalTokenCreated, StandInToken
from auth.tokens import TokenIssuer
from platform_common.clock import utcnow
from platform_common.opaque_tokens import hash_token, new_token
from platform_common.permissions import PAT_SCOPES
from platform_common.verification import PAT_PREFIX, InvalidToken

STAND_IN_TTL = timedelta(seconds=60)
LAST_USED_RESOLUTION = timedelta(minutes=1)


class PersonalTokenService:
    def __init__(self, *, issuer: TokenIssuer) -> None:
        self.issuer = issuer

    async def create(
        self, db: AsyncSession, user_id: uuid.UUID, data: PersonalTokenCreate
    ) -> PersonalTokenCreated:
        now = utcnow()
        secret = new_token(PAT_PREFIX)
        scopes = sorted(set(data.scopes)) if data.scopes is not None else None
        token = PersonalAccessToken(
            id=uuid.uuid4(),
            user_id=user_id,
            name=data.name,
            token_hash=secret.hash,
            scopes=scopes,
            created_at=now,
            expires_at=now + timedelta(days=data.expires_in_days),
        )
        await PersonalAccessTokenRepository(db).add(token)
        record_token_event(db, "token.created", token.id, user_id, name=token.name, scopes=scopes)
        return PersonalTokenCreated(
            id=token.id,
            name=token.name,
            token=secret.value,
            scopes=scopes,
            created_at=token.created_at,
            expires_at=token.expires_at,
        )

    async def list_tokens(
        self, db: AsyncSession, user_id: uuid.UUID, *, offset: int, limit: int
    ) -> tuple[Sequence[PersonalAccessToken], int]:
        return await PersonalAccessTokenRepository(db).list_for_user(
            user_id, offset=offset, limit=limit
        )

    async def delete(self, db: AsyncSession, user_id: uuid.UUID, token_id: uuid.UUID) -> None:
        if not await PersonalAccessTokenRepository(db).delete_for_user(user_id, token_id):
            raise PersonalTokenNotFound("No such personal access token.")
        record_token_event(db, "token.deleted", token_id, user_id)

    async def revoke(self, db: AsyncSession, token: str) -> bool:
        """Delete the PAT whose secret this is (RFC 7009: by whoever holds it)."""
        deleted = await PersonalAccessTokenRepository(db).delete_by_hash(hash_token(token))
        if deleted is None:
            return False
        token_id, user_id = deleted
        record_token_event(db, "token.deleted", token_id, user_id, revoked=True)
        return True

    async def find(self, db: AsyncSession, token: str) -> PersonalAccessToken | None:
        """The live PAT whose secret this is (for introspection)."""
        found = await PersonalAccessTokenRepository(db).get_live_by_hash(
            hash_token(token), utcnow()
        )
        return found[0] if found is not None else None

    async def exchange(self, db: AsyncSession, token: str) -> StandInToken:
        now = utcnow()
        if not token.startswith(PAT_PREFIX):
            raise InvalidToken("Not a personal access token.")
        tokens = PersonalAccessTokenRepository(db)
        found = await tokens.get_live_by_hash(hash_token(token), now)
        if found is None:
            raise InvalidToken("The personal access token is unknown, deleted or expired.")
        pat, user = found
        await tokens.touch(pat.id, now, not_since=now - LAST_USED_RESOLUTION)
        ttl = min(STAND_IN_TTL, pat.expires_at - now)
        stand_in = self.issuer.personal_token_stand_in(
            user_id=user.id,
            pat_id=pat.id,
            role=user.role,
            email=user.email,
            name=user.name,
            scopes=pat.scopes if pat.scopes is not None else list(PAT_SCOPES),
            now=now,
            ttl=ttl,
        )
        return StandInToken(access_token=stand_in, expires_in=max(1, int(ttl.total_seconds())))


def record_token_event(
    db: AsyncSession, type: str, token_id: uuid.UUID, user_id: uuid.UUID, **data: Any
) -> None:
    record_event(
        db,
        type=type,
        actor=Actor.user(user_id),
        target=Target(type="token", id=str(token_id)),
        data={"user_id": str(user_id), **data},
    )
