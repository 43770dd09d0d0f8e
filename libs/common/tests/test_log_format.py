"""Log lines: JSON objects in production, readable text otherwise, each with the request id
and, inside a span, the trace and span ids."""

from __future__ import annotations

import io
import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from platform_common.observability import (
    JsonFormatter,
    RequestIdFilter,
    TextFormatter,
    log_format,
)
from platform_common.request_context import bind_request, unbind_request
from platform_common.settings import ServiceSettings


def log_one(formatter: logging.Formatter, in_span: bool) -> tuple[str, str]:
    """Log one line inside a request (and a span); (the line, the span's trace id)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"test.log_format.{id(formatter)}")
    logger.addHandler(handler)
    logger.propagate = False
    tracer = TracerProvider().get_tracer(__name__)
    trace_id = ""
    tokens = bind_request("req-42", None)
    try:
        if in_span:
            with tracer.start_as_current_span("work") as span:
                trace_id = format(span.get_span_context().trace_id, "032x")
                logger.warning("disk %s full", "/data")
        else:
            logger.warning("disk %s full", "/data")
    finally:
        unbind_request(tokens)
        logger.removeHandler(handler)
    return stream.getvalue().rstrip("\n"), trace_id


def test_json_lines_carry_level_service_request_and_trace() -> None:
    line, trace_id = log_one(JsonFormatter("users"), in_span=True)
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["service"] == "users"
    assert entry["message"] == "disk /data full"
    assert entry["request_id"] == "req-42"
    assert entry["trace_id"] == trace_id and len(entry["span_id"]) == 16
    assert entry["time"].endswith("+00:00")


def test_outside_a_span_there_are_no_trace_fields() -> None:
    line, _ = log_one(JsonFormatter("users"), in_span=False)
    entry = json.loads(line)
    assert "trace_id" not in entry and "span_id" not in entry
    text, _ = log_one(TextFormatter("users"), in_span=False)
    assert " WARNING users [req-42] " in text
    assert text.endswith(": disk /data full")


def test_text_lines_are_readable_and_end_with_the_trace() -> None:
    line, trace_id = log_one(TextFormatter("orgs"), in_span=True)
    assert " WARNING orgs [req-42] " in line
    assert ": disk /data full trace_id=" + trace_id + " span_id=" in line


@pytest.mark.parametrize(
    ("environment", "configured", "expected"),
    [("production", None, "json"), ("development", None, "text"), ("production", "text", "text")],
)
def test_json_is_the_production_default(
    environment: str, configured: str | None, expected: str
) -> None:
    settings = ServiceSettings(environment=environment, log_format=configured)
    assert log_format(settings) == expected
