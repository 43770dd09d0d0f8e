"""The app factory every service uses.

```
create_service_app(settings, routers, resources=...)
  middleware:  Edge (X-Request-ID, caller's Authorization, 413, last-resort 500, request
               metrics, access log)
               outermost; innermost Deadline (at most `max_requests_in_flight` at once,
               the rest queued in order; 503 `request_timeout` when nothing answered
               within `request_timeout_seconds`)
  handlers:    problem+json for ProblemError, validation, HTTP errors, dependency failures,
               then the service's own `exception_handlers`
  routes:      /livez /readyz /metrics, the service's routers (each declares its prefix:
               /api/v1/<service>, internal ones /internal/v1/<service>),
               OpenAPI at /api/v1/<service>/openapi.json, docs at /api/v1/<service>/docs
  state:       one typed PlatformState (platform_common.state): settings, engine,
               sessionmaker, redis, revocations, verifier, readiness, peers, metrics registry
  lifespan:    the service's own `resources` context (keys, background tasks) inside ours;
               readiness turns 503 as soon as shutdown starts; everything is closed on exit
```

Outgoing HTTP (the JWKS fetch, auth's vouching for personal access tokens and calls to
peers) goes through transports that tests can replace with `httpx.MockTransport` via
`transports={"jwks": ..., "auth": ..., "<peer>": ...}`.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
from fastapi import APIRouter, Depends, FastAPI
from starlette.middleware.cors import CORSMiddleware

from platform_common.db import (
    Reader,
    create_engine,
    create_read_sessionmaker,
    create_sessionmaker,
)
from platform_common.deadline import DeadlineMiddleware
from platform_common.edge import EdgeMiddleware
from platform_common.error_handlers import ExceptionHandler, install_error_handlers
from platform_common.errors import Problem
from platform_common.health import router as health_router
from platform_common.http import ServiceClient
from platform_common.metrics import PlatformMetrics
from platform_common.observability import (
    exports_traces,
    instrument_app,
    new_registry,
    setup_logging,
    trace_engine,
    trace_http,
    trace_redis,
)
from platform_common.pat_exchange import HttpPatExchanger, auth_origin
from platform_common.rate_limit import RateLimiter, enforce_rate_limit
from platform_common.redis import create_redis
from platform_common.revocation import RevocationStore
from platform_common.settings import ServiceSettings
from platform_common.state import PlatformState
from platform_common.token_docs import describe_tokens
from platform_common.verification import JWKSKeySource, KeySource, PatExchanger, TokenVerifier

logger = logging.getLogger(__name__)
Resources = Callable[[FastAPI], AbstractAsyncContextManager[None]]

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (401, 403, 404, 422, 503)
}

# Only operations that read a body can answer these, so they are added to those operations'
# OpenAPI (see `_declare_body_errors`). A route's own entry (auth's OAuth2 `/token` answers
# RFC 6749 400s) wins. By reference: `Problem` is a component already.
BODY_ERROR_RESPONSES: dict[int, dict[str, Any]] = {
    status: {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }
    for status, description in (
        (400, "`bad_request`: the body cannot be parsed at all (not UTF-8, for one)"),
        (413, "`payload_too_large`: the body is over the size limit"),
    )
}


RATE_LIMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "`rate_limited`: over the caller's limit; see `Retry-After` and the "
        "`RateLimit-Policy` / `RateLimit` headers every response carries",
        "content": {"application/problem+json": {}},
    }
}


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    internal_routers: Sequence[APIRouter] = (),
    peers: dict[str, str] | None = None,
    resources: Resources | None = None,
    key_source: Callable[[FastAPI], KeySource] | None = None,
    pat_exchanger: Callable[[FastAPI], PatExchanger] | None = None,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    exception_handlers: Mapping[type[Exception], ExceptionHandler] | None = None,
    version: str = "1.0.0",
) -> FastAPI:
    """Build a service. `peers` maps a peer's name to its base URL."""
    transports = transports or {}
    prefix = f"/api/v1/{settings.service_name}"
    # Fail fast (before serving anything) when production settings are incomplete.
    database_url = settings.resolved_database_url()
    redis_url = settings.resolved_redis_url()
    setup_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        jwks_http = httpx.AsyncClient(
            timeout=settings.http_timeout_seconds, transport=transports.get("jwks")
        )
        if traced:
            trace_http(jwks_http)
        state.peers = {
            name: ServiceClient(
                name,
                url,
                timeout_seconds=settings.http_timeout_seconds,
                transport=transports.get(name),
                durations=metrics.peer_requests,
                traced=traced,
            )
            for name, url in (peers or {}).items()
        }
        # Personal access tokens are vouched for by auth (platform_common.pat_exchange).
        pat_client = ServiceClient(
            "auth",
            auth_origin(settings.jwks_url),
            timeout_seconds=settings.http_timeout_seconds,
            transport=transports.get("auth"),
            durations=metrics.peer_requests,
            traced=traced,
        )
        try:
            if resources is not None:
                async with resources(app):
                    state.verifier = _verifier(app, jwks_http, pat_client)
                    _freeze_startup_heap()
                    yield
            else:
                state.verifier = _verifier(app, jwks_http, pat_client)
                _freeze_startup_heap()
                yield
        finally:
            state.readiness.draining = True
            for client in state.peers.values():
                await client.aclose()
            await pat_client.aclose()
            await jwks_http.aclose()
            await state.redis.aclose()
            await state.engine.dispose()

    def _verifier(
        app: FastAPI, jwks_http: httpx.AsyncClient, pat_client: ServiceClient
    ) -> TokenVerifier:
        keys = (
            key_source(app)
            if key_source is not None
            else JWKSKeySource(
                settings.jwks_url,
                jwks_http,
                cache_seconds=settings.jwks_cache_seconds,
                min_refresh_interval=settings.jwks_min_refresh_interval_seconds,
                refreshes=metrics.jwks_refreshes,
            )
        )
        return TokenVerifier(
            keys,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            algorithms=settings.jwt_algorithms,
            revocations=state.revocations,
            leeway_seconds=settings.jwt_leeway_seconds,
            pat_exchanger=(
                pat_exchanger(app) if pat_exchanger is not None else HttpPatExchanger(pat_client)
            ),
            pat_cache_seconds=settings.pat_cache_seconds,
        )

    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        openapi_url=f"{prefix}/openapi.json",
        docs_url=f"{prefix}/docs",
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=f"{prefix}/docs/oauth2-redirect",
        responses=ERROR_RESPONSES,
    )
    registry = new_registry(settings)
    metrics = PlatformMetrics(registry)
    metrics.declare_peers(list(peers or {}))
    engine = create_engine(settings, database_url, metrics=metrics)
    redis = create_redis(settings, redis_url, errors=metrics.redis_errors)
    traced = exports_traces(settings)
    if traced:
        trace_engine(engine)
        trace_redis(redis)
    state = PlatformState(
        settings=settings,
        engine=engine,
        sessionmaker=create_sessionmaker(engine),
        read_sessionmaker=create_read_sessionmaker(engine),
        reader=Reader(engine, traced=traced),
        redis=redis,
        revocations=RevocationStore(redis, settings.revocation_cache_seconds),
        rate_limiter=(
            RateLimiter(
                redis, settings.rate_limits(), service=settings.service_name, metrics=metrics
            )
            if settings.rate_limit_enabled
            else None
        ),
    )
    app.state.platform = state

    install_error_handlers(app, exception_handlers)
    app.include_router(health_router)
    # Each router declares its own prefix (/api/v1/<service>, or /internal/v1/<service> for
    # service-to-service endpoints, which the ingress never routes).
    # Every public endpoint is rate limited per caller (platform_common.rate_limit).
    for router in routers:
        app.include_router(
            router, dependencies=[Depends(enforce_rate_limit)], responses=RATE_LIMIT_RESPONSES
        )
    for router in internal_routers:
        app.include_router(router)
    _declare_body_errors(app)
    if settings.request_timeout_seconds or settings.max_requests_in_flight:
        # Added first = innermost: the metrics, traces, CORS headers and the edge's request id
        # and access log treat its 503 like any other answer.
        app.add_middleware(
            DeadlineMiddleware,
            timeout_seconds=settings.request_timeout_seconds,
            max_in_flight=settings.max_requests_in_flight,
        )
    instrument_app(app, settings, registry)
    state.metrics_registry = registry
    if settings.cors_origins:
        # Inside the edge (preflights get a request id too), outside everything else:
        # a preflight never reaches authentication.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            # Bearer tokens travel in Authorization, not cookies: no credentialed requests.
            allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After", "RateLimit-Policy", "RateLimit"],
            max_age=600,
        )
    # Added last = outermost: the request id exists before anything else runs.
    app.add_middleware(EdgeMiddleware, max_body_bytes=settings.max_body_bytes, metrics=metrics)
    return app


def _freeze_startup_heap() -> None:
    """In a process that froze its start-up heap (gunicorn's post_worker_init, before the
    lifespan ran), freeze what the lifespan built as well: its pools, clients and the ORM's
    configured mappers would otherwise be walked by every full collection, about 100 ms
    each under load (bench/README.md). Elsewhere (tests, `make up`) nothing changes."""
    frozen = gc.get_freeze_count()
    if frozen:
        gc.collect()
        gc.freeze()
        logger.info("froze %d more objects once started", gc.get_freeze_count() - frozen)


def _declare_body_errors(app: FastAPI) -> None:
    """Document 400 and 413 on every operation with a request body, and the tokens each
    accepts (platform_common.token_docs) (FastAPI's "extending OpenAPI" hook: routes of
    included routers are no longer editable one by one)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    if isinstance(operation, dict) and "requestBody" in operation:
                        responses = operation.setdefault("responses", {})
                        for status, response in BODY_ERROR_RESPONSES.items():
                            responses.setdefault(str(status), response)
            describe_tokens(app, schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
