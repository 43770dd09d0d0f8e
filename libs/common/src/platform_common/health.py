"""`/livez` and `/readyz`, outside the API prefix (the ingress does not route them).

Readiness checks the database and Redis, each bounded by a short timeout so a hung
dependency makes the probe fail instead of hang, and answers 503 once shutdown has begun so
that load balancers stop sending traffic while in-flight requests finish.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from platform_common.errors import problem_response
from platform_common.state import platform_state

CHECK_TIMEOUT_SECONDS = 1.0


router = APIRouter(include_in_schema=False)


@router.get("/livez")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


async def _check_database(request: Request) -> None:
    async with platform_state(request.app).engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _check_redis(request: Request) -> None:
    await platform_state(request.app).redis.ping()


async def _run(check: Any, request: Request) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await check(request)
    except Exception:
        return "unavailable"
    return "ok"


@router.get("/readyz")
async def readyz(request: Request) -> Any:
    readiness = platform_state(request.app).readiness
    if readiness.draining:
        return problem_response(
            request,
            status=503,
            code="draining",
            detail="The service is shutting down.",
            extra={"checks": {}},
        )
    names = ["database", "redis"]
    results = await asyncio.gather(_run(_check_database, request), _run(_check_redis, request))
    checks = dict(zip(names, results, strict=True))
    if all(result == "ok" for result in results):
        return JSONResponse({"status": "ready", "checks": checks})
    return problem_response(
        request,
        status=503,
        code="not_ready",
        detail="A dependency is unavailable: "
        + ", ".join(name for name, result in checks.items() if result != "ok"),
        extra={"checks": checks},
    )
