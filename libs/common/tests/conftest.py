"""Fixtures for libs/common: a small demo service built with the shared app factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.responses import StreamingResponse
from pydantic_settings import SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from platform_common.app import create_service_app
from platform_common.db import SessionDep
from platform_common.errors import Conflict
from platform_common.security import CurrentPrincipal, RequireAdmin
from platform_common.settings import ServiceSettings
from platform_testing import Backends, TokenFactory, backends, running  # noqa: F401

ISSUER = "http://auth.test/api/v1/auth"
AUDIENCE = "identity-platform"


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="ignore", frozen=True)
    service_name: str = "demo"


router = APIRouter(prefix="/api/v1/demo")


@router.get("/whoami")
async def whoami(principal: CurrentPrincipal) -> dict[str, Any]:
    return {"sub": principal.subject, "role": principal.role, "scopes": sorted(principal.scopes)}


@router.get("/admin-only")
async def admin_only(_: RequireAdmin) -> dict[str, str]:
    return {"ok": "yes"}


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("secret internals: password=hunter2 SELECT * FROM users")


@router.get("/db-down")
async def db_down() -> None:
    raise OperationalError("SELECT 1", {}, Exception("connection refused"))


@router.get("/conflict")
async def conflict() -> None:
    raise Conflict("Already there.")


@router.get("/hold")
async def hold(db: SessionDep) -> dict[str, bool]:
    """Keeps its pooled connection for a second."""
    await db.execute(text("SELECT pg_sleep(1)"))
    return {"held": True}


@router.get("/stream")
async def stream() -> StreamingResponse:
    """Starts its answer at once and finishes it a second later."""

    async def body() -> AsyncIterator[bytes]:
        yield b"started "
        await asyncio.sleep(1)
        yield b"done"

    return StreamingResponse(body(), media_type="text/plain")


@router.get("/multi")
async def multi_get() -> dict[str, str]:
    return {"method": "GET"}


@router.patch("/multi")
async def multi_patch() -> dict[str, str]:
    return {"method": "PATCH"}


@router.delete("/multi", status_code=204)
async def multi_delete() -> None:
    return None


@router.post("/echo")
async def echo(body: dict[str, Any]) -> dict[str, int]:
    return {"keys": len(body)}


@pytest.fixture(scope="session")
async def demo_database_url(backends: Backends) -> str:
    return await backends.create_database("common")


@pytest.fixture
def tokens() -> TokenFactory:
    return TokenFactory(ISSUER, AUDIENCE)


@pytest.fixture
def make_app(demo_database_url: str, backends: Backends) -> Callable[..., FastAPI]:
    def make(jwks: Callable[[httpx.Request], httpx.Response], **overrides: Any) -> FastAPI:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": demo_database_url,
            "redis_url": backends.redis_url,
            "jwt_issuer": ISSUER,
            "jwt_audience": AUDIENCE,
            "jwks_url": "http://auth.test/api/v1/auth/jwks.json",
        }
        values.update(overrides)
        return create_service_app(
            DemoSettings(**values),
            title="demo",
            description="demo",
            routers=[router],
            transports={"jwks": httpx.MockTransport(jwks)},
        )

    return make


@pytest.fixture
async def demo(
    make_app: Callable[..., FastAPI], tokens: TokenFactory
) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(lambda request: httpx.Response(200, json=tokens.jwks()))
    async with running(app, raise_app_exceptions=False) as client:
        yield client


@router.post("/write")
async def write(db: SessionDep) -> dict[str, bool]:
    await db.execute(text("SELECT 1"))
    return {"written": True}
