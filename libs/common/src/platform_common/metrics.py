"""The platform's own metrics.

```
http_requests_total{method, status, handler}   every answer, status grouped (2xx, 4xx, ...);
                                               handler = the route's template
http_request_duration_seconds{handler, method} histogram (LATENCY_BUCKETS): both recorded by
                                               EdgeMiddleware (edge.py), under the names and
                                               labels of prometheus-fastapi-instrumentator,
                                               which serves /metrics
peer_request_duration_seconds{peer, outcome}   histogram: calls to other services (http.py);
                                               outcome ok | client_error | server_error |
                                               timeout | unreachable
rate_limited_requests_total{policy}            429s of the per-caller limiter (rate_limit.py)
redis_errors_total{error}                      Redis commands that failed (redis.py)
jwks_refreshes_total{outcome}                  JWKS fetches: ok | failed (verification.py)
db_pool_size                                   connections the pool may open (db.py)
db_pool_connections_in_use                     checked out right now
db_pool_waiting_requests                       waiting for a connection right now
```

Everything is counted where it happens, in memory (an mmap'd file per worker under
gunicorn's multiprocess mode): no metric costs a request any I/O. The gauges sum across the
workers of a pod (`livesum`). Every label value that is known in advance is created at
zero, so a panel shows 0 rather than nothing before the first event.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Buckets of http_request_duration_seconds{handler, method}. The latency SLOs of the chart
# (values.yaml, metrics.slos) count requests under one of these; the dashboards' quantiles
# are interpolated between them.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REDIS_ERRORS = ("ConnectionError", "TimeoutError", "ResponseError")
PEER_OUTCOMES = ("ok", "client_error", "server_error", "timeout", "unreachable")
# Calls to peers are bounded by http_timeout_seconds (2 s by default).
PEER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


class PlatformMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.http_requests = Counter(
            "http_requests_total",
            "Total number of requests by method, status and handler.",
            ["method", "status", "handler"],
            registry=registry,
        )
        self.http_request_duration = Histogram(
            "http_request_duration_seconds",
            "Latency of requests by handler and method, until the response is complete.",
            ["handler", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.peer_requests = Histogram(
            "peer_request_duration_seconds",
            "Calls to other services of the platform, by peer and outcome",
            ["peer", "outcome"],
            buckets=PEER_BUCKETS,
            registry=registry,
        )
        self.rate_limited = Counter(
            "rate_limited_requests",
            "Requests refused with 429 by the per-caller rate limit, by policy",
            ["policy"],
            registry=registry,
        )
        self.redis_errors = Counter(
            "redis_errors",
            "Redis commands that failed, by error (the exception's class)",
            ["error"],
            registry=registry,
        )
        for error in REDIS_ERRORS:
            self.redis_errors.labels(error=error)
        self.jwks_refreshes = Counter(
            "jwks_refreshes",
            "Fetches of the token issuer's JWKS, by outcome",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("ok", "failed"):
            self.jwks_refreshes.labels(outcome=outcome)
        self.db_pool_size = Gauge(
            "db_pool_size",
            "Connections the database pool may hold",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.db_pool_in_use = Gauge(
            "db_pool_connections_in_use",
            "Database connections checked out of the pool",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.db_pool_waiting = Gauge(
            "db_pool_waiting_requests",
            "Requests waiting for a database connection",
            registry=registry,
            multiprocess_mode="livesum",
        )

    def declare_peers(self, names: list[str]) -> None:
        for name in names:
            for outcome in PEER_OUTCOMES:
                self.peer_requests.labels(peer=name, outcome=outcome)

    def declare_policies(self, names: list[str]) -> None:
        for name in names:
            self.rate_limited.labels(policy=name)
