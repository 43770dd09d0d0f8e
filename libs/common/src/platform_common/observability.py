"""Logs, metrics and traces.

- Logs: one line per record with the request id, at the configured level.
- Metrics: prometheus-fastapi-instrumentator on `/metrics` (request counts by handler and
  status class, latency histograms). Each app gets its own registry; under gunicorn,
  `PROMETHEUS_MULTIPROC_DIR` switches the exposition to the multiprocess collector so the
  numbers sum every worker (see `gunicorn_conf`).
- Traces: an OpenTelemetry tracer provider configured from the standard `OTEL_*`
  environment. With no exporter endpoint configured nothing is exported (spans are still
  made, so `traceparent` propagates); `OTEL_SDK_DISABLED=true` turns tracing off.
"""

from __future__ import annotations

import logging
import os
import sys

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_fastapi_instrumentator import Instrumentator

from platform_common.request_context import current_request_id
from platform_common.settings import ServiceSettings

_NOT_TRACED = "livez,readyz,metrics"
# Buckets of http_request_duration_seconds{handler, method}. The latency SLOs of the chart
# (values.yaml, metrics.slos) count requests under one of these; the dashboards' quantiles
# are interpolated between them.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_tracing_pid: int | None = None


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        return True


def setup_logging(settings: ServiceSettings) -> None:
    root = logging.getLogger()
    if any(isinstance(f, RequestIdFilter) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter(
            f"%(asctime)s %(levelname)s {settings.service_name} [%(request_id)s] "
            "%(name)s: %(message)s"
        )
    )
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
    if settings.otel_exporter_otlp_endpoint or settings.otel_exporter_otlp_traces_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


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

    Instrumentator(
        should_group_status_codes=True,
        should_ignore_untemplated=True,
        # /readyz stays in: its 503s are what the readiness alert watches.
        excluded_handlers=["/metrics", "/livez"],
        registry=registry,
    ).instrument(app, latency_lowr_buckets=LATENCY_BUCKETS).expose(
        app, include_in_schema=False, should_gzip=True
    )
