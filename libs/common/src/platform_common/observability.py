"""Logs, metrics and traces.

- Logs: one line per record, at the configured level, with the request id and, inside a
  span, the trace and span ids: JSON objects in production (`*_LOG_FORMAT`, default json
  when `*_ENVIRONMENT=production`), readable text otherwise (`make up`).
- Metrics: prometheus-fastapi-instrumentator serves `/metrics`; the request counts by handler
  and status class and the latency histograms are recorded by `EdgeMiddleware`. Each app
  gets its own registry; under gunicorn, `PROMETHEUS_MULTIPROC_DIR` switches the exposition
  to the multiprocess collector so the numbers sum every worker (see `gunicorn_conf`).
- Traces: an OpenTelemetry tracer provider configured from the standard `OTEL_*`
  environment. With no exporter endpoint configured nothing is exported (spans are still
  made, so `traceparent` propagates); `OTEL_SDK_DISABLED=true` turns tracing off. Spans:
  the server span of each request (FastAPI; with the request id as `request.id`), calls to
  peers and the JWKS (httpx, inside platform_common.http's own span), every SQL statement
  (SQLAlchemy's engine events, so asyncpg's queries) and every Redis command, these only
  when an exporter is configured (`exports_traces`). Sampling: the SDK's standard
  `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (default: every trace). One
  `GET /users/me` is one trace across users and orgs (tests/e2e/test_one_trace.py).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_fastapi_instrumentator import Instrumentator
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from platform_common.request_context import current_request_id
from platform_common.settings import ServiceSettings

_NOT_TRACED = "livez,readyz,metrics"
_tracing_pid: int | None = None


class RequestIdFilter(logging.Filter):
    """Adds `request_id`, `trace_id` and `span_id` ("-" outside a request or a span)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        else:
            record.trace_id = record.span_id = "-"
        return True


class TextFormatter(logging.Formatter):
    """`2026-01-01 12:00:00,000 INFO users [<request id>] name: message`, and the trace and
    span ids at the end of lines logged inside a span."""

    def __init__(self, service: str) -> None:
        super().__init__(
            f"%(asctime)s %(levelname)s {service} [%(request_id)s] %(name)s: %(message)s"
        )

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        trace_id = getattr(record, "trace_id", "-")
        if trace_id == "-":
            return line
        head, newline, rest = line.partition("\n")  # a traceback stays below
        span_id = getattr(record, "span_id", "-")
        return f"{head} trace_id={trace_id} span_id={span_id}{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what a log collector indexes without parsing text."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "trace_id", "span_id"):
            value = getattr(record, key, "-")
            if value != "-":
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def log_format(settings: ServiceSettings) -> str:
    if settings.log_format is not None:
        return settings.log_format
    return "json" if settings.is_production else "text"


def setup_logging(settings: ServiceSettings) -> None:
    root = logging.getLogger()
    if any(isinstance(f, RequestIdFilter) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    formatter = JsonFormatter if log_format(settings) == "json" else TextFormatter
    handler.setFormatter(formatter(settings.service_name))
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # httpx logs every request it sends at INFO: one line per call to a peer is noise.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def setup_tracing(settings: ServiceSettings) -> None:
    """Install the process's tracer provider once (again in each forked worker)."""
    global _tracing_pid
    # An app built with tracing disabled installs nothing, and must not keep a later app of
    # the same process (the test suite builds many) from installing the provider.
    if _tracing_pid == os.getpid() or settings.otel_sdk_disabled:
        return
    _tracing_pid = os.getpid()
    resource = Resource.create(
        {"service.name": settings.otel_service_name or settings.service_name}
    )
    provider = TracerProvider(resource=resource)
    if exports_traces(settings):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def exports_traces(settings: ServiceSettings) -> bool:
    """Whether spans leave the process. Only then are SQL statements, Redis commands and
    HTTP calls traced: spans nobody receives would cost every request for nothing (the
    server span stays, for `traceparent`)."""
    return not settings.otel_sdk_disabled and bool(
        settings.otel_exporter_otlp_endpoint or settings.otel_exporter_otlp_traces_endpoint
    )


def trace_engine(engine: AsyncEngine) -> None:
    """A span per SQL statement. Per engine, not by patching `create_async_engine` (which
    db.py has imported by then); the instrumentation's connection-usage metric goes to the
    no-op meter: the pool's figures are Prometheus' (platform_common.metrics)."""
    usage = metrics.get_meter(__name__).create_up_down_counter("db.client.connections.usage")
    EngineTracer(  # type: ignore[no-untyped-call]
        trace.get_tracer("opentelemetry.instrumentation.sqlalchemy"), engine.sync_engine, usage
    )


def trace_redis(client: Redis) -> None:
    """A span per Redis command of this client."""
    RedisInstrumentor.instrument_client(client)


def trace_http(client: httpx.AsyncClient) -> None:
    """A client span per HTTP request of this client, `traceparent` injected."""
    HTTPXClientInstrumentor.instrument_client(client)


def setup_tracing_after_fork() -> None:
    """gunicorn's post_fork hook: a forked worker needs its own provider and export thread."""
    global _tracing_pid
    _tracing_pid = None


def new_registry(settings: ServiceSettings) -> CollectorRegistry:
    """The app's own registry (the process collectors only outside multiprocess mode)."""
    registry = CollectorRegistry(auto_describe=True)
    if not settings.prometheus_multiproc_dir:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


def instrument_app(app: FastAPI, settings: ServiceSettings, registry: CollectorRegistry) -> None:
    setup_tracing(settings)
    if not settings.otel_sdk_disabled:
        FastAPIInstrumentor.instrument_app(app, excluded_urls=_NOT_TRACED)

    # The request metrics are recorded by EdgeMiddleware (edge.py), under the instrumentator's
    # names and labels: its own middleware matched every request against every route a
    # second time and built a Request, a Response and four metrics per request, two of which
    # nothing read (bench/README.md). It serves them.
    Instrumentator(registry=registry).expose(app, include_in_schema=False, should_gzip=True)
