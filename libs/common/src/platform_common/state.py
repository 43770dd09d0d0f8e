"""What `create_service_app` builds, as one typed object on the app.

```
PlatformState              app.state.platform, set once when the app is built
  settings                 the service's settings (its own subclass)
  engine, sessionmaker     the database (read_sessionmaker: autocommit, for pure reads;
                           reader: single statements on asyncpg directly, for hot reads)
  redis, revocations       Redis and the session-revocation store on it
  rate_limiter             per-caller limits (platform_common.rate_limit), None when off
  readiness                flips to draining when shutdown starts
  metrics_registry         where the service's own metrics go
  peers                    name -> ServiceClient, opened by the lifespan
  verifier                 the access-token verifier, made by the lifespan
```

Code reaches it through `platform_state(app)` or the dependencies below, never through
untyped `app.state.<name>` reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from platform_common.revocation import RevocationStore
from platform_common.settings import ServiceSettings

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from platform_common.db import Reader
    from platform_common.http import ServiceClient
    from platform_common.rate_limit import RateLimiter
    from platform_common.verification import TokenVerifier


@dataclass
class Readiness:
    """Flips to draining when shutdown starts, so /readyz answers 503 from then on."""

    draining: bool = False


@dataclass
class PlatformState:
    settings: ServiceSettings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    read_sessionmaker: async_sessionmaker[AsyncSession]
    reader: Reader
    redis: Redis
    revocations: RevocationStore
    readiness: Readiness = field(default_factory=Readiness)
    metrics_registry: Any = None
    peers: dict[str, ServiceClient] = field(default_factory=dict)
    verifier: TokenVerifier | None = None
    rate_limiter: RateLimiter | None = None

    def peer(self, name: str) -> ServiceClient:
        return self.peers[name]


def platform_state(app: Starlette) -> PlatformState:
    state: PlatformState = app.state.platform
    return state


async def get_platform_state(connection: HTTPConnection) -> PlatformState:
    return platform_state(connection.app)


PlatformStateDep = Annotated[PlatformState, Depends(get_platform_state)]
