"""Sessions: login, refresh-token rotation, logout, and ending sessions.

Revocations are written to Redis before the request's commit, so a failure in between can
only over-revoke (the client logs in again), never leave an ended session usable.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from auth.config import AuthSettings
from auth.emails import normalize_email
from auth.errors import (
    AccountDisabled,
    EmailNotVerified,
    InvalidCredentials,
    InvalidRefreshToken,
    RefreshTokenReused,
    SessionNotFound,
)
from auth.events import (
    Actor,
    EventRecord,
    Target,
    bounded,
    record_event,
    record_user_event,
)
from auth.models import RefreshToken, User, UserSession
from auth.passwords import PasswordHasher
from auth.repository import (
    RefreshTokenRepository,
    Rotation,
    UserRepository,
    UserSessionRepository,
)
from auth.schemas import LoginTokens, TokenPair
from auth.throttle import LoginRateLimited, LoginThrottle
from auth.tokens import TokenIssuer
from platform_common.clock import utcnow
from platform_common.events.record import wake_relays
from platform_common.opaque_tokens import hash_token, new_token
from platform_common.revocation import RevocationStore


@dataclass(frozen=True)
class ClientInfo:
    user_agent: str | None
    address: str | None


logger = logging.getLogger(__name__)

# Label values created at zero, so that dashboards show 0 before the first event.
LOGIN_OUTCOMES = ("success", "invalid_credentials", "rate_limited", "account_disabled")
REVOCATION_REASONS = (
    "logout", "logout_all", "refresh_reuse", "password_changed", "disabled", "ended_by_user",
    "account_deleted",
)  # fmt: skip


class SessionService:
    def __init__(
        self,
        settings: AuthSettings,
        *,
        hasher: PasswordHasher,
        issuer: TokenIssuer,
        throttle: LoginThrottle,
        revocations: RevocationStore,
        registry: CollectorRegistry | None = None,
        engine: AsyncEngine | None = None,
    ) -> None:
        # The ordinary refresh-token rotation commits on its own (`rotate`); None: always in
        # the caller's session.
        self.autocommit = (
            engine.execution_options(isolation_level="AUTOCOMMIT") if engine is not None else None
        )
        # Outcomes the request metrics cannot tell apart (401 vs 429 are both "4xx").
        self.login_attempts = Counter(
            "auth_login_attempts",
            "Login attempts by outcome",
            ["outcome"],
            registry=registry,
        )
        for outcome in LOGIN_OUTCOMES:
            self.login_attempts.labels(outcome=outcome)
        self.refresh_reuse = Counter(
            "auth_refresh_token_reuse",
            "Refresh tokens presented again after their rotation (the session is ended)",
            registry=registry,
        )
        self.sessions_revoked = Counter(
            "auth_sessions_revoked",
            "Sessions ended, and their access tokens revoked everywhere, by reason",
            ["reason"],
            registry=registry,
        )
        for reason in REVOCATION_REASONS:
            self.sessions_revoked.labels(reason=reason)
        self.hasher = hasher
        self.issuer = issuer
        self.throttle = throttle
        self.revocations = revocations
        self.access_ttl = timedelta(seconds=settings.access_token_ttl_seconds)
        # How long a session's revocation must be remembered: an access token lives at most
        # access_ttl (+ the verifiers' leeway) after issue.
        self.revocation_lifetime = self.access_ttl + timedelta(seconds=60)
        self.refresh_ttl = timedelta(seconds=settings.refresh_token_ttl_seconds)
        self.reuse_grace = timedelta(seconds=settings.refresh_reuse_interval_seconds)
        self.require_verified_email = settings.require_verified_email
        # Called after a successful login, before its session exists (the new-sign-in notice
        # of auth.service.account_mail); None: nothing.
        self.on_login: Callable[[AsyncSession, User, ClientInfo], Awaitable[None]] | None = None

    # Login -------------------------------------------------------------------------------

    async def authenticate(
        self,
        db: AsyncSession,
        email: str,
        password: str,
        client: ClientInfo,
        device_token: str | None = None,
    ) -> tuple[User, str]:
        """The account and the device token its client keeps; failures are counted by the
        throttle when the attempt is admitted."""
        email = normalize_email(email)
        attempt = await self.throttle.before_attempt(email, client.address, device_token)
        user = await UserRepository(db).get_by_email(email)
        if user is None:
            # Hash anyway, so that timing does not tell which accounts exist.
            await self.hasher.verify(password, self.hasher.dummy_hash)
            raise InvalidCredentials
        valid, new_hash = await self.hasher.verify(password, user.password_hash)
        if not valid:
            raise InvalidCredentials
        device_token = await self.throttle.record_success(attempt)
        if not user.is_active:
            raise AccountDisabled("This account has been disabled.")
        if self.require_verified_email and not user.email_verified:
            raise EmailNotVerified
        if new_hash:
            user.password_hash = new_hash
        return user, device_token

    async def login(
        self,
        db: AsyncSession,
        email: str,
        password: str,
        client: ClientInfo,
        device_token: str | None = None,
    ) -> LoginTokens:
        try:
            user, device_token = await self.authenticate(db, email, password, client, device_token)
        except (InvalidCredentials, AccountDisabled, LoginRateLimited) as exc:
            self.login_attempts.labels(outcome=exc.code).inc()
            if not isinstance(exc, LoginRateLimited):
                try:
                    await self.record_failed_login(db, email, exc.code)
                except Exception:  # the 401 stands; the audit trail misses one failure
                    logger.exception("could not record a failed login")
            raise
        self.login_attempts.labels(outcome="success").inc()
        if self.on_login is not None:
            await self.on_login(db, user, client)
        pair, session_id = await self.start_session_with_id(db, user, client)
        record_user_event(db, "login.succeeded", user.id, session_id=str(session_id))
        return LoginTokens(**pair.model_dump(), device_token=device_token)

    async def record_failed_login(self, db: AsyncSession, email: str, reason: str) -> None:
        """A `login.failed` event, in a transaction of its own: the request's rolls back with
        its 401. The email is cut to a bound (it is the caller's text, and unknown emails are
        recorded too); throttled attempts (429) are not recorded, so a flood costs rows only
        as fast as the login throttle and rate limits admit attempts."""
        address = normalize_email(email)
        async with AsyncSession(db.bind, expire_on_commit=False) as own, own.begin():
            user = await UserRepository(own).get_by_email(bounded(address))
            record_event(
                own,
                type="login.failed",
                actor=Actor.user(user.id) if user else Actor(id=None, kind="user"),
                target=Target(type="user", id=str(user.id) if user else bounded(address)),
                data={
                    "email": bounded(address),
                    "reason": reason,
                    **({"user_id": str(user.id)} if user else {}),
                },
            )
        wake_relays(EventRecord)

    async def start_session(self, db: AsyncSession, user: User, client: ClientInfo) -> TokenPair:
        pair, _ = await self.start_session_with_id(db, user, client)
        return pair

    async def start_session_with_id(
        self, db: AsyncSession, user: User, client: ClientInfo
    ) -> tuple[TokenPair, uuid.UUID]:
        now = utcnow()
        user_session = UserSession(
            id=uuid.uuid4(),
            user_id=user.id,
            created_at=now,
            last_used_at=now,
            expires_at=now + self.refresh_ttl,
            user_agent=(client.user_agent or "")[:512] or None,
            client_address=client.address,
        )
        refresh = new_token()
        await UserSessionRepository(db).add(
            user_session, self._refresh_token(user_session, refresh.hash, now)
        )
        return self._pair(user, user_session.id, refresh.value, now), user_session.id

    @staticmethod
    def _refresh_token(user_session: UserSession, token_hash: str, now: datetime) -> RefreshToken:
        # A refresh token lives as long as its session, however often it is rotated.
        return RefreshToken(
            session_id=user_session.id,
            token_hash=token_hash,
            created_at=now,
            expires_at=user_session.expires_at,
        )

    def _pair(
        self, user: User | Rotation, session_id: uuid.UUID, refresh_token: str, now: datetime
    ) -> TokenPair:
        access = self.issuer.user_token(
            user_id=user.id if isinstance(user, User) else user.user_id,
            session_id=session_id,
            role=user.role,
            email=user.email,
            email_verified=user.email_verified,
            name=user.name,
            now=now,
            ttl=self.access_ttl,
        )
        return TokenPair(
            access_token=access,
            refresh_token=refresh_token,
            expires_in=int(self.access_ttl.total_seconds()),
        )

    # Refresh-token rotation --------------------------------------------------------------

    async def refresh(self, db: AsyncSession, refresh_token: str) -> TokenPair:
        """Rotate: the presented token is retired and a new pair issued.

        A token that was already rotated means it leaked (or a client raced itself): the
        whole session is ended, so whoever holds the newer token is logged out too.

        The ordinary case is one statement (`rotate`); any other token is looked at step by
        step (`refresh_checked`), which answers as each case requires.
        """
        pair = await self.rotate(refresh_token, db)
        if pair is None:
            pair = await self.refresh_checked(db, refresh_token)
        return pair

    async def rotate(self, refresh_token: str, db: AsyncSession | None = None) -> TokenPair | None:
        """The ordinary rotation (an unused, unexpired token of a live session of an active
        account) in one statement; None for any other token, and nothing changed: then
        `refresh_checked` answers. Without a session (or in one that has not begun a
        transaction) the statement runs on a connection of its own in autocommit, so the
        request needs no session, BEGIN or COMMIT at all; in a session's transaction it runs
        there."""
        now = utcnow()
        refresh = new_token()
        token_hash, new_id = hash_token(refresh_token), uuid.uuid4()
        if db is not None and (db.in_transaction() or self.autocommit is None):
            rotation = await RefreshTokenRepository(db).rotate(
                token_hash, new_id, refresh.hash, now
            )
        elif self.autocommit is not None:
            rotation = await RefreshTokenRepository.rotate_autocommitted(
                self.autocommit, token_hash, new_id, refresh.hash, now
            )
        else:
            return None
        if rotation is None:
            return None
        return self._pair(rotation, rotation.session_id, refresh.value, now)

    async def refresh_checked(self, db: AsyncSession, refresh_token: str) -> TokenPair:
        """A token that did not rotate in one statement: unknown, expired, of an ended
        session or a disabled account (refused), or already rotated (within the reuse grace:
        a new pair; otherwise reuse, and the session is ended), or one rotated by a
        concurrent request a moment ago."""
        now = utcnow()
        tokens = RefreshTokenRepository(db)
        stored = await tokens.get_by_hash(hash_token(refresh_token))
        if stored is None:
            raise InvalidRefreshToken("The refresh token is not valid.")
        sessions = UserSessionRepository(db)
        user_session = await sessions.get_live(stored.session_id, now)
        if user_session is None or stored.expires_at <= now:
            raise InvalidRefreshToken("The refresh token has expired or its session has ended.")
        if stored.rotated_at is None and not await tokens.mark_rotated(stored.id, now):
            await db.refresh(stored)  # a concurrent request rotated it a moment ago
        if stored.rotated_at is not None and not self._within_reuse_grace(stored, now):
            self.refresh_reuse.inc()
            await self.end_sessions(
                db, user_session.user_id, reason="refresh_reuse", session_ids=[user_session.id]
            )
            raise RefreshTokenReused(
                "The refresh token was already used; the session has been ended."
            )
        user = await UserRepository(db).get(user_session.user_id)
        if user is None or not user.is_active:
            raise InvalidRefreshToken("The account is not active.")
        refresh = new_token()
        await tokens.add(self._refresh_token(user_session, refresh.hash, now))
        await sessions.touch(user_session.id, now)
        return self._pair(user, user_session.id, refresh.value, now)

    def _within_reuse_grace(self, stored: RefreshToken, now: datetime) -> bool:
        """Presented again right after its rotation: the same client racing itself (two tabs),
        answered with another pair of the same session, not a stolen token's replay. Only the
        rotated token's hash is kept, so the successor itself cannot be handed out again."""
        assert stored.rotated_at is not None
        return now - stored.rotated_at <= self.reuse_grace

    # Ending sessions ---------------------------------------------------------------------

    async def end_sessions(
        self,
        db: AsyncSession,
        user_id: uuid.UUID,
        *,
        reason: str,
        session_ids: list[uuid.UUID] | None = None,
        keep: uuid.UUID | None = None,
        actor: Actor | None = None,
    ) -> list[uuid.UUID]:
        """End a user's live sessions (all, the given ones, or all but `keep`) and revoke
        their access tokens at every service; the ids of the sessions ended."""
        ended = await UserSessionRepository(db).end(
            user_id=user_id, now=utcnow(), reason=reason, session_ids=session_ids, keep=keep
        )
        ttl = int(self.revocation_lifetime.total_seconds())
        await self.revocations.revoke_sessions([str(sid) for sid in ended], ttl)
        if ended:
            self.sessions_revoked.labels(reason=reason).inc(len(ended))
        for session_id in ended:
            record_event(
                db,
                type="session.ended",
                actor=actor or Actor.user(user_id),
                target=Target(type="session", id=str(session_id)),
                data={"user_id": str(user_id), "reason": reason},
            )
        return ended

    async def logout(self, db: AsyncSession, refresh_token: str) -> None:
        stored = await RefreshTokenRepository(db).get_by_hash(hash_token(refresh_token))
        if stored is None:
            return  # RFC 7009: an unknown token is not an error
        user_session = await UserSessionRepository(db).get(stored.session_id)
        if user_session is not None and user_session.ended_at is None:
            await self.end_sessions(
                db, user_session.user_id, reason="logout", session_ids=[user_session.id]
            )

    async def logout_all(self, db: AsyncSession, user_id: uuid.UUID) -> None:
        await self.end_sessions(db, user_id, reason="logout_all")

    async def list_sessions(
        self, db: AsyncSession, user_id: uuid.UUID, *, offset: int, limit: int
    ) -> tuple[list[UserSession], int]:
        return await UserSessionRepository(db).list_live(
            user_id, utcnow(), offset=offset, limit=limit
        )

    async def end_session(
        self, db: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID
    ) -> None:
        ended = await self.end_sessions(
            db, user_id, reason="ended_by_user", session_ids=[session_id]
        )
        if not ended:
            # Another user's session, or none at all: the same answer either way.
            raise SessionNotFound("No such session.")
