"""`WebSocket /api/v1/orgs/{slug}/live`: each event of the org, as one JSON text message.

```
accept
  -> token: `Authorization: Bearer ...`, else a first message {"token": "..."} within
     ORGS_LIVE_AUTH_TIMEOUT_SECONDS (5)                       none / malformed: close 4401
  -> the orgs HTTP endpoints' own checks, called as they are: the verifier (user tokens,
     org-scoped tokens, personal access tokens), get_current_user, get_org_access,
     require_permission("org:read") (viewer+)
       401 -> 4401   403 -> 4403   404 -> 4404 (non-member, unknown org)   503 -> 1011
  -> LiveHub.connect(org, user); then, until one of them ends it:
       sender     queue -> send_text (events as published); a queued close request
                  (member.removed of this user, org.deleted) -> 4403
       receiver   the client's close (anything it sends is ignored)
       checker    every ORGS_LIVE_TOKEN_CHECK_SECONDS (1): the token again (expired,
                  revoked session, revoked org marker, deleted PAT -> 4401); every
                  ORGS_LIVE_MEMBERSHIP_CHECK_SECONDS (5): the membership again, a fallback
                  for a missed event (-> 4403)
       hub        1008 when the client does not read (its queue is full), 1001 on drain
```

Failing dependencies close with 1011, never keep a socket whose token cannot be checked:
a client reconnects (with back-off) and is authenticated afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy.exc import SQLAlchemyError
from starlette.websockets import WebSocketState

from orgs.cache import UserOrgsInvalidation
from orgs.config import OrgsSettings
from orgs.dependencies import get_org_access, get_organization_service, require_permission
from orgs.live import (
    GOING_AWAY,
    INTERNAL_ERROR,
    MEMBERSHIP_ENDED,
    NOT_A_MEMBER,
    UNAUTHENTICATED,
    CloseRequest,
    Connection,
    LiveHub,
    live_hub,
)
from orgs.revocation import MemberTokenRevocation
from orgs.service import OrgAccess
from platform_common.errors import ProblemError
from platform_common.security import get_current_user
from platform_common.state import PlatformState, platform_state
from platform_common.verification import Principal

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/orgs", tags=["live"])

READ_PERMISSION = "org:read"
CLOSE_TIMEOUT_SECONDS = 1.0
_CLOSE_FOR_STATUS = {401: UNAUTHENTICATED, 403: MEMBERSHIP_ENDED, 404: NOT_A_MEMBER}


class Refused(Exception):
    """Close the socket with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _refusal(exc: ProblemError) -> Refused:
    code = _CLOSE_FOR_STATUS.get(exc.status, INTERNAL_ERROR)
    return Refused(code, exc.code)


@router.websocket("/{slug}/live")
async def live(websocket: WebSocket, slug: str) -> None:
    hub = live_hub(websocket)
    platform = platform_state(websocket.app)
    settings = platform.settings
    assert isinstance(settings, OrgsSettings)
    await websocket.accept()
    if hub.draining:
        await _close(websocket, GOING_AWAY, "server shutting down")
        return
    try:
        token = await _token(websocket, settings.live_auth_timeout_seconds)
        principal = await _verify(platform, token)
        access = await _access(platform, principal, slug)
    except Refused as refused:
        hub.metrics.closed.labels(code=str(refused.code)).inc()
        await _close(websocket, refused.code, refused.reason)
        return
    except WebSocketDisconnect:
        return
    connection = hub.connect(access.org.id, principal.user_id)
    try:
        await _serve(websocket, hub, connection, platform, settings, token, slug)
    finally:
        hub.disconnect(connection)


async def _token(websocket: WebSocket, within: float) -> str:
    header = websocket.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused(UNAUTHENTICATED, "not_authenticated")
        return token.strip()
    try:
        message = await asyncio.wait_for(websocket.receive_text(), within)
    except TimeoutError as exc:
        raise Refused(UNAUTHENTICATED, "not_authenticated") from exc
    except (KeyError, RuntimeError) as exc:  # a binary frame, or the client went away
        raise Refused(UNAUTHENTICATED, "not_authenticated") from exc
    try:
        body: Any = json.loads(message)
    except ValueError:
        body = None
    claimed = body.get("token") if isinstance(body, dict) else None
    if not isinstance(claimed, str) or not claimed:
        raise Refused(UNAUTHENTICATED, "not_authenticated")
    return claimed


async def _verify(platform: PlatformState, token: str) -> Principal:
    """The token as the HTTP endpoints take it (platform_common.security)."""
    verifier = platform.verifier
    assert verifier is not None, "the app's lifespan has not started"
    try:
        return await get_current_user(await verifier.verify(token))
    except ProblemError as exc:
        raise _refusal(exc) from exc


async def _access(platform: PlatformState, principal: Principal, slug: str) -> OrgAccess:
    """The org and the caller's access, by the endpoints' own dependencies (viewer+)."""
    try:
        async with platform.read_sessionmaker() as db:
            orgs = await get_organization_service(
                db,
                UserOrgsInvalidation(platform.redis),
                MemberTokenRevocation(platform.revocations),
            )
            access = await get_org_access(slug, principal, orgs)
        return await require_permission(READ_PERMISSION)(access)
    except ProblemError as exc:
        raise _refusal(exc) from exc
    except (SQLAlchemyError, OSError) as exc:
        logger.warning("live: the membership could not be read: %s", exc)
        raise Refused(INTERNAL_ERROR, "dependency_unavailable") from exc


async def _serve(
    websocket: WebSocket,
    hub: LiveHub,
    connection: Connection,
    platform: PlatformState,
    settings: OrgsSettings,
    token: str,
    slug: str,
) -> None:
    async def send() -> None:
        while True:
            item = await connection.queue.get()
            if isinstance(item, CloseRequest):
                connection.close(item.code, item.reason)
                return
            await websocket.send_text(item)
            hub.metrics.messages_sent.inc()

    async def receive() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return

    async def check() -> None:
        membership_every = settings.live_membership_check_seconds
        since_membership = 0.0
        while True:
            await asyncio.sleep(settings.live_token_check_seconds)
            since_membership += settings.live_token_check_seconds
            try:
                principal = await _verify(platform, token)
                if since_membership >= membership_every:
                    since_membership = 0.0
                    await _access(platform, principal, slug)
            except Refused as refused:
                # A member who was one when the socket opened is no longer: 4403, not 4404.
                code = MEMBERSHIP_ENDED if refused.code == NOT_A_MEMBER else refused.code
                connection.close(code, refused.reason)
                return

    tasks = [asyncio.create_task(job()) for job in (send, receive, check)]
    sender, receiver, _checker = tasks
    waited: list[asyncio.Future[Any]] = [*tasks, connection.closing]
    try:
        done, _ = await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if receiver in done:
        return  # the client closed
    if connection.closing.done():
        code, reason = connection.closing.result()
    elif sender in done:
        return  # sending failed: the client is gone
    else:
        code, reason = INTERNAL_ERROR, "internal_error"
    hub.metrics.closed.labels(code=str(code)).inc()
    await _close(websocket, code, reason)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close with `code`, unless the client is gone or cannot even take the close frame in
    time (a client that does not read): then the server just lets go of it."""
    if websocket.application_state != WebSocketState.CONNECTED:
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(code, reason), CLOSE_TIMEOUT_SECONDS)
