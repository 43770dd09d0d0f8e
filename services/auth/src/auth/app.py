"""The auth service's app factory (`uvicorn --factory auth.app:create_app`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from auth.api import internal_router, router
from auth.api_mail import router as mail_router
from auth.audit_api import audit_router
from auth.clients.orgs import OrgsClient
from auth.clients.users import UsersClient
from auth.config import AuthSettings, get_settings
from auth.forgot_throttle import ForgotThrottle
from auth.keys import KeyRing
from auth.models import EventRecord, MailOutbox
from auth.oauth2 import oauth_error
from auth.outbox import OutboxRelay
from auth.passwords import PasswordHasher
from auth.revocation_sync import RevocationKeeper
from auth.service import (
    AccountDeletionService,
    AccountService,
    ClientCredentials,
    OrgTokenService,
    PersonalTokenService,
    SessionService,
)
from auth.service.account_mail import AccountMailService
from auth.service.introspection import TokenIntrospection
from auth.throttle import LoginThrottle
from auth.tokens import TokenIssuer
from platform_common.app import create_service_app
from platform_common.error_handlers import http_exception_handler, problem_error_handler
from platform_common.events import EventRelay
from platform_common.mail import Mailer, MailSender, MailTemplates
from platform_common.rate_limit import RateLimitExceeded
from platform_common.security import StaticKeySource
from platform_common.state import PlatformState, platform_state

TOKEN_PATH = "/api/v1/auth/token"  # noqa: S105 - a path, not a secret

DESCRIPTION = """
Registration, login, access and refresh tokens, sessions and revocation; org-scoped access
tokens (`/org-token`: the membership read from orgs, with the role's permissions), personal
access tokens (`/tokens`, `ipt_...`), RFC 7662 introspection and RFC 7009 revocation; the
account's lifecycle by mail (`/email/verify`, `/password/forgot`, `/password/reset`,
`/email/change`: single-use tokens mailed as the `token` query parameter of a link).
Each operation's description ends with the tokens it accepts (also `x-accepted-tokens`).

Access tokens are ES256 JWTs; verify them with the keys at `/api/v1/auth/jwks.json`.
Errors are `application/problem+json` (RFC 9457), except on the OAuth2 endpoint
`/api/v1/auth/token`, which answers in RFC 6749 form. Use the **Authorize** button with an
email and password to try the authenticated endpoints.
"""


def create_app(
    settings: AuthSettings | None = None,
    *,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    run_outbox: bool = True,
    run_revocation_keeper: bool = True,
    run_mail_sender: bool = True,
) -> FastAPI:
    settings = settings or get_settings()
    keyring = KeyRing.load(
        settings.resolved_signing_keys_dir(), create_if_missing=not settings.is_production
    )
    hasher = PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )
    issuer = TokenIssuer(keyring, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    personal_tokens = PersonalTokenService(issuer=issuer)

    @contextlib.asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        platform = platform_state(app)
        app.state.keyring = keyring
        app.state.issuer = issuer
        sessions = SessionService(
            settings,
            hasher=hasher,
            issuer=issuer,
            throttle=LoginThrottle(
                platform.redis,
                max_failures_per_account=settings.login_max_failures_per_account,
                account_window_seconds=settings.login_account_window_seconds,
                max_delay_seconds=settings.login_max_delay_seconds,
                device_token_days=settings.login_device_token_days,
                known_address_days=settings.login_known_address_days,
                max_attempts_per_ip=settings.login_max_attempts_per_ip,
                ip_window_seconds=settings.login_ip_window_seconds,
            ),
            revocations=platform.revocations,
            registry=platform.metrics_registry,
            engine=platform.engine,
        )
        app.state.session_service = sessions
        app.state.account_service = AccountService(hasher=hasher, sessions=sessions)
        app.state.client_credentials = ClientCredentials(settings, issuer=issuer)
        # Mail: queued in auth's database with the change, sent by this process' sender.
        mail_sender = MailSender(
            platform.sessionmaker, MailOutbox, settings, registry=platform.metrics_registry
        )
        app.state.mail_sender = mail_sender
        account_mail = AccountMailService(
            settings,
            hasher=hasher,
            accounts=app.state.account_service,
            sessions=sessions,
            mailer=Mailer(MailOutbox, MailTemplates(settings.mail_link_base_url), mail_sender.wake),
            forgot_throttle=ForgotThrottle(
                platform.redis,
                max_per_email=settings.password_forgot_max_per_email,
                max_per_ip=settings.password_forgot_max_per_ip,
                window_seconds=settings.password_forgot_window_seconds,
            ),
        )
        app.state.account_mail = account_mail
        sessions.on_login = account_mail.notice_new_sign_in
        mail_task = asyncio.create_task(mail_sender.run_forever()) if run_mail_sender else None
        app.state.personal_token_service = personal_tokens
        app.state.token_introspection = TokenIntrospection(
            sessions=sessions, personal_tokens=personal_tokens
        )
        orgs = OrgsClient(platform.peer("orgs"), issuer)
        app.state.org_token_service = OrgTokenService(
            settings,
            issuer=issuer,
            orgs=orgs,
            revocations=platform.revocations,
        )
        app.state.account_deletion_service = AccountDeletionService(
            hasher=hasher, sessions=sessions, orgs=orgs, mailer=account_mail.mailer
        )
        app.state.outbox = OutboxRelay(
            platform.sessionmaker,
            UsersClient(platform.peer("users"), issuer),
            orgs=orgs,
            poll_seconds=settings.outbox_poll_seconds,
            registry=platform.metrics_registry,
        )
        # Not in auth-migrate's seeding: no background work, no metric files there.
        keeper = (
            RevocationKeeper(
                platform.sessionmaker,
                platform.redis,
                platform.revocations,
                token_lifetime=sessions.revocation_lifetime,
                registry=platform.metrics_registry,
            )
            if run_revocation_keeper
            else None
        )
        keeper_task = asyncio.create_task(keeper.run_forever()) if keeper is not None else None
        task = asyncio.create_task(app.state.outbox.run_forever()) if run_outbox else None
        # Security events: auth's events table -> events:auth (platform_common.events).
        relay = EventRelay.for_service(platform, EventRecord)
        app.state.event_relay = relay
        relay_task = (
            asyncio.create_task(relay.run_forever())
            if run_outbox and settings.events_relay_enabled
            else None
        )
        try:
            yield
        finally:
            if relay_task is not None:
                relay_task.cancel()
                await asyncio.wait([relay_task], timeout=5)
            if keeper is not None and keeper_task is not None:
                keeper_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper_task
                await keeper.aclose()
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if mail_task is not None:
                mail_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await mail_task
            await mail_sender.aclose()

    app = create_service_app(
        settings,
        title="auth",
        description=DESCRIPTION,
        routers=[router, mail_router, audit_router],
        internal_routers=[internal_router],
        peers={"users": settings.users_url, "orgs": settings.orgs_url},
        resources=resources,
        # auth verifies its own tokens with the keys it holds: no HTTP call to itself.
        key_source=lambda app: StaticKeySource(keyring.jwks()["keys"]),
        # ...and vouches for personal access tokens from its own database.
        pat_exchanger=lambda app: LocalPatExchanger(platform_state(app), personal_tokens),
        transports=transports,
        exception_handlers={
            StarletteHTTPException: oauth_body_errors,
            RateLimitExceeded: oauth_rate_limited,
        },
    )
    # Keys are loaded before start-up so that /jwks.json works as soon as the app exists.
    app.state.keyring = keyring
    return app


class LocalPatExchanger:
    """auth's own verifier has personal access tokens vouched for in-process (a session of
    its own: the exchange records `last_used_at`), not over HTTP to itself."""

    def __init__(self, platform: PlatformState, personal_tokens: PersonalTokenService) -> None:
        self.platform = platform
        self.personal_tokens = personal_tokens

    async def exchange(self, token: str) -> str:
        async with self.platform.sessionmaker() as db, db.begin():
            return (await self.personal_tokens.exchange(db, token)).access_token


async def oauth_body_errors(request: Request, exc: Exception) -> Response:
    """A token request whose form cannot be parsed (a multipart body without a boundary) is
    refused by FastAPI before the endpoint runs; OAuth2 clients still get RFC 6749's
    `invalid_request`. Every other HTTP error keeps the common problem+json handler."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and request.url.path == TOKEN_PATH:
        return oauth_error(400, "invalid_request", str(exc.detail))
    return await http_exception_handler(request, exc)


async def oauth_rate_limited(request: Request, exc: Exception) -> Response:
    """Over the per-caller rate limit at the OAuth2 endpoint: RFC 6749's form (`slow_down`, as
    for login throttling there); problem+json everywhere else."""
    assert isinstance(exc, RateLimitExceeded)
    if request.url.path == TOKEN_PATH:
        return oauth_error(429, "slow_down", exc.detail, exc.headers)
    return await problem_error_handler(request, exc)
