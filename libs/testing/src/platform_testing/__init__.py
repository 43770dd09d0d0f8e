"""Test support for the services (a dev-only workspace package; production never imports it).

```
backends    the PostgreSQL and Redis of the test session (env URLs, testcontainers or the
            embedded servers), fresh databases, clean-up between tests
tokens      TokenFactory (tokens as auth mints them), Caller, bearer, the test issuer,
            FakePatExchange (auth vouching for personal access tokens)
apps        running / client_factory (an app and an in-process client), assert_problem
processes   real processes for the cross-service tests (spawn, stop_process_group), and
            require_tool (a missing prometheus/helm/promtool fails, never skips)
prometheus  PrometheusServer (a real Prometheus with the chart's scrape configs and rules)
otlp        OtlpReceiver (the e2e stack's traces, over OTLP/HTTP)
embedded_*  the embedded PostgreSQL and Redis (also what `make up` runs), RedisServer (a
            Redis a test can flush, kill and restart)
```
"""

from platform_testing.apps import (
    asgi_get,
    assert_problem,
    client_factory,
    refused_within,
    running,
    wait_for,
)
from platform_testing.backends import (
    Backends,
    backends,
    empty_tables,
    flush_redis,
    migrated_database,
    reset_backends,
    worker_number,
)
from platform_testing.embedded_redis import RedisServer
from platform_testing.processes import (
    free_port,
    log_tail,
    require_tool,
    spawn,
    stop_process_group,
)
from platform_testing.tokens import (
    TEST_AUDIENCE,
    TEST_ISSUER,
    TEST_JWKS_URL,
    Caller,
    FakePatExchange,
    TokenFactory,
    bearer,
    jwks_transport,
    verifying_settings,
)

__all__ = [
    "TEST_AUDIENCE",
    "TEST_ISSUER",
    "TEST_JWKS_URL",
    "Backends",
    "Caller",
    "FakePatExchange",
    "RedisServer",
    "TokenFactory",
    "asgi_get",
    "assert_problem",
    "backends",
    "bearer",
    "client_factory",
    "empty_tables",
    "flush_redis",
    "free_port",
    "jwks_transport",
    "log_tail",
    "migrated_database",
    "refused_within",
    "require_tool",
    "reset_backends",
    "running",
    "spawn",
    "stop_process_group",
    "verifying_settings",
    "wait_for",
    "worker_number",
]
