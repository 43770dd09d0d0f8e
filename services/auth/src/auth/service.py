"""auth's rules: registration, login, token rotation, sessions, revocation, admin actions.

Services never commit: the request's session dependency commits when the handler returns.
Revocations are written to Redis before that commit, so a failure in between can only
over-revoke (the client logs in again), never leave an ended session usable.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth.config import AuthSettings
from auth.errors import (
    AccountDisabled,
    EmailTaken,
    InvalidClient,
    InvalidCredentials,
    InvalidRefreshToken,
    RefreshTokenReused,
    SessionNotFound,
    UserNotFound,
    WrongPassword,
)
from auth.models import OutboxEvent, RefreshToken, Session, User
from auth.passwords import PasswordHasher, check_password_policy
from auth.repository import (
    OutboxRepository,
    RefreshTokenRepository,
    SessionRepository,
    UserRepository,
)
from auth.schemas import ServiceToken, TokenPair, UserCreate
from auth.throttle import LoginRateLimited, LoginThrottle
from auth.tokens import TokenIssuer, hash_refresh_token, new_refresh_token
from platform_common.revocation import RevocationStore


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ClientInfo:
    user_agent: str | None
    address: str | None


def user_event(event_type: str, user: User) -> OutboxEvent:
    return OutboxEvent(
        event_type=event_type,
        aggregate_id=user.id,
        payload={
            "id": str(user.id),
            "email": user.email,
            "name": user.name,
            "role": user.role,
            "is_active": user.is_active,
            "created_at": user.created_at.isoformat(),
            "version": int(utcnow().timestamp() * 1_000_000),
        },
    )


class AuthService:
    def __init__(
        self,
        settings: AuthSettings,
        *,
        hasher: PasswordHasher,
        issuer: TokenIssuer,
        throttle: LoginThrottle,
        revocations: RevocationStore,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        # Outcomes the request metrics cannot tell apart (401 vs 429 are both "4xx").
        self.login_attempts = Counter(
            "auth_login_attempts",
            "Login attempts by outcome",
            ["outcome"],
            registry=registry,
        )
        self.hasher = hasher
        self.issuer = issuer
        self.throttle = throttle
        self.revocations = revocations
        self.access_ttl = timedelta(seconds=settings.access_token_ttl_seconds)
        self.refresh_ttl = timedelta(seconds=settings.refresh_token_ttl_seconds)

    # Registration ------------------------------------------------------------------------

    async def register(self, db: AsyncSession, data: UserCreate, *, role: str = "user") -> User:
        email = str(data.email).strip().lower()
        check_password_policy(data.password, email)
        users = UserRepository(db)
        if await users.get_by_email(email) is not None:
            raise EmailTaken("An account with this email already exists.")
        now = utcnow()
        user = User(
            id=uuid.uuid4(),
            email=email,
            name=data.name.strip(),
            password_hash=await self.hasher.hash(data.password),
            role=role,
            is_active=True,
            created_at=now,
            updated_at=now,
            password_changed_at=now,
        )
        try:
            # A savepoint, so that a concurrent registration of the same email becomes a 409
            # and the session stays usable.
            async with db.begin_nested():
                await users.add(user)
                await OutboxRepository(db).add(user_event("user.registered", user))
        except IntegrityError as exc:
            raise EmailTaken("An account with this email already exists.") from exc
        return user

    # Login and tokens --------------------------------------------------------------------

    async def authenticate(
        self, db: AsyncSession, email: str, password: str, client: ClientInfo
    ) -> User:
        email = email.strip().lower()
        await self.throttle.before_attempt(email, client.address)
        user = await UserRepository(db).get_by_email(email)
        if user is None:
            await self.hasher.verify(password, self.hasher.dummy_hash)
            await self.throttle.record_failure(email)
            raise InvalidCredentials
        valid, new_hash = await self.hasher.verify(password, user.password_hash)
        if not valid:
            await self.throttle.record_failure(email)
            raise InvalidCredentials
        await self.throttle.record_success(email)
        if not user.is_active:
            raise AccountDisabled("This account has been disabled.")
        if new_hash:
            user.password_hash = new_hash
        return user

    async def login(
        self, db: AsyncSession, email: str, password: str, client: ClientInfo
    ) -> TokenPair:
        try:
            user = await self.authenticate(db, email, password, client)
        except (InvalidCredentials, AccountDisabled, LoginRateLimited) as exc:
            self.login_attempts.labels(outcome=exc.code).inc()
            raise
        self.login_attempts.labels(outcome="success").inc()
        return await self.start_session(db, user, client)

    async def start_session(self, db: AsyncSession, user: User, client: ClientInfo) -> TokenPair:
        now = utcnow()
        auth_session = Session(
            id=uuid.uuid4(),
            user_id=user.id,
            created_at=now,
            last_used_at=now,
            expires_at=now + self.refresh_ttl,
            user_agent=(client.user_agent or "")[:512] or None,
            client_address=client.address,
        )
        token, token_hash = new_refresh_token()
        refresh = RefreshToken(
            session_id=auth_session.id,
            token_hash=token_hash,
            created_at=now,
            expires_at=auth_session.expires_at,
        )
        await SessionRepository(db).add(auth_session, refresh)
        return self._pair(user, auth_session.id, token, now)

    def _pair(
        self, user: User, session_id: uuid.UUID, refresh_token: str, now: datetime
    ) -> TokenPair:
        access = self.issuer.user_token(
            user_id=user.id,
            session_id=session_id,
            role=user.role,
            email=user.email,
            name=user.name,
            now=now,
            ttl=self.access_ttl,
        )
        return TokenPair(
            access_token=access,
            refresh_token=refresh_token,
            expires_in=int(self.access_ttl.total_seconds()),
        )

    async def refresh(self, db: AsyncSession, refresh_token: str) -> TokenPair:
        """Rotate: the presented token is retired and a new pair issued.

        A token that was already rotated means it leaked (or a client raced itself): the
        whole session is ended, so whoever holds the newer token is logged out too.
        """
        now = utcnow()
        tokens = RefreshTokenRepository(db)
        stored = await tokens.get_by_hash(hash_refresh_token(refresh_token))
        if stored is None:
            raise InvalidRefreshToken("The refresh token is not valid.")
        sessions = SessionRepository(db)
        auth_session = await sessions.get_live(stored.session_id, now)
        if auth_session is None or stored.expires_at <= now:
            raise InvalidRefreshToken("The refresh token has expired or its session has ended.")
        if stored.rotated_at is not None or not await tokens.mark_rotated(stored.id, now):
            await self._end_sessions(
                db, auth_session.user_id, reason="refresh_reuse", session_ids=[auth_session.id]
            )
            raise RefreshTokenReused(
                "The refresh token was already used; the session has been ended."
            )
        user = await UserRepository(db).get(auth_session.user_id)
        if user is None or not user.is_active:
            raise InvalidRefreshToken("The account is not active.")
        token, token_hash = new_refresh_token()
        await tokens.add(
            RefreshToken(
                session_id=auth_session.id,
                token_hash=token_hash,
                created_at=now,
                expires_at=auth_session.expires_at,
            )
        )
        await sessions.touch(auth_session.id, now)
        return self._pair(user, auth_session.id, token, now)

    # Sessions and revocation -------------------------------------------------------------

    async def _end_sessions(
        self,
        db: AsyncSession,
        user_id: uuid.UUID,
        *,
        reason: str,
        session_ids: list[uuid.UUID] | None = None,
        keep: uuid.UUID | None = None,
    ) -> list[uuid.UUID]:
        ended = await SessionRepository(db).end(
            user_id=user_id, now=utcnow(), reason=reason, session_ids=session_ids, keep=keep
        )
        # An access token lives at most access_ttl (+ the verifiers' leeway) after issue.
        ttl = int(self.access_ttl.total_seconds()) + 60
        await self.revocations.revoke_sessions([str(sid) for sid in ended], ttl)
        return ended

    async def logout(self, db: AsyncSession, refresh_token: str) -> None:
        stored = await RefreshTokenRepository(db).get_by_hash(hash_refresh_token(refresh_token))
        if stored is None:
            return  # RFC 7009: an unknown token is not an error
        auth_session = await db.get(Session, stored.session_id)
        if auth_session is not None and auth_session.ended_at is None:
            await self._end_sessions(
                db, auth_session.user_id, reason="logout", session_ids=[auth_session.id]
            )

    async def logout_all(self, db: AsyncSession, user_id: uuid.UUID) -> None:
        await self._end_sessions(db, user_id, reason="logout_all")

    async def list_sessions(
        self, db: AsyncSession, user_id: uuid.UUID, *, offset: int, limit: int
    ) -> tuple[list[Session], int]:
        rows, total = await SessionRepository(db).list_live(
            user_id, utcnow(), offset=offset, limit=limit
        )
        return list(rows), total

    async def end_session(
        self, db: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID
    ) -> None:
        ended = await self._end_sessions(
            db, user_id, reason="ended_by_user", session_ids=[session_id]
        )
        if not ended:
            # Another user's session, or none at all: the same answer either way.
            raise SessionNotFound("No such session.")

    async def change_password(
        self,
        db: AsyncSession,
        user_id: uuid.UUID,
        current_session: uuid.UUID | None,
        current_password: str,
        new_password: str,
    ) -> None:
        user = await UserRepository(db).get(user_id)
        if user is None or not user.is_active:
            raise InvalidCredentials("The account is not active.")
        valid, _ = await self.hasher.verify(current_password, user.password_hash)
        if not valid:
            raise WrongPassword("The current password is incorrect.")
        check_password_policy(new_password, user.email)
        user.password_hash = await self.hasher.hash(new_password)
        user.password_changed_at = utcnow()
        await self._end_sessions(db, user.id, reason="password_changed", keep=current_session)

    # Administration ----------------------------------------------------------------------

    async def set_active(self, db: AsyncSession, user_id: uuid.UUID, active: bool) -> User:
        users = UserRepository(db)
        user = await users.get(user_id)
        if user is None:
            raise UserNotFound("No such user.")
        if user.is_active != active:
            user.is_active = active
            user.updated_at = utcnow()
            await OutboxRepository(db).add(
                user_event("user.enabled" if active else "user.disabled", user)
            )
        if not active:
            await self._end_sessions(db, user.id, reason="disabled")
        return user

    async def get_user(self, db: AsyncSession, user_id: uuid.UUID) -> User:
        user = await UserRepository(db).get(user_id)
        if user is None:
            raise UserNotFound("No such user.")
        return user

    # Service clients ---------------------------------------------------------------------

    def client_credentials(
        self, client_id: str, client_secret: str, scope: str | None
    ) -> ServiceToken:
        client = self.settings.service_clients.get(client_id)
        presented = hashlib.sha256(client_secret.encode()).hexdigest()
        expected = client.secret_sha256 if client else "0" * 64
        if client is None or not hmac.compare_digest(presented, expected):
            raise InvalidClient("Unknown client or wrong secret.")
        requested = set(scope.split()) if scope else set(client.scopes)
        if not requested <= set(client.scopes):
            raise InvalidClient("The client may not request these scopes.")
        ttl = timedelta(seconds=self.settings.service_token_ttl_seconds)
        token = self.issuer.service_token(
            name=client_id, scopes=sorted(requested), now=utcnow(), ttl=ttl
        )
        return ServiceToken(
            access_token=token,
            expires_in=int(ttl.total_seconds()),
            scope=" ".join(sorted(requested)),
        )

    # Seeding -----------------------------------------------------------------------------

    async def ensure_admin(
        self, db: AsyncSession, email: str, password: str, name: str = "Platform admin"
    ) -> tuple[User, bool]:
        """Create the platform admin, or promote and re-enable an existing account."""
        existing = await UserRepository(db).get_by_email(email)
        if existing is not None:
            changed = existing.role != "admin" or not existing.is_active
            existing.role = "admin"
            existing.is_active = True
            if changed:
                await OutboxRepository(db).add(user_event("user.updated", existing))
            return existing, False
        user = await self.register(
            db, UserCreate(email=email, password=password, name=name), role="admin"
        )
        return user, True
