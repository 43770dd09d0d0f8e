"""One request, one trace across the services, as the platform exports it over OTLP.

The e2e stack exports to a small OTLP/HTTP receiver (platform_testing.otlp, wired in
tests/conftest.py). A new user's first `GET /api/v1/users/me` goes through nginx to users,
which reads its database, checks revocations and its cache in Redis, and asks orgs for the
user's organizations (nothing cached yet), which reads its own database: every one of those
spans is in one trace, the request id on the server spans, and users' log line of the
request carries the trace and span ids.

(Named to run before test_outages.py, which leaves orgs stopped at the end of the folder.)
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import httpx
import pytest

from platform_testing.otlp import OtlpReceiver, Span

pytestmark = pytest.mark.slow

EXPORT_DEADLINE_SECONDS = 10.0


def wait_for_trace(receiver: OtlpReceiver, request_id: str) -> list[Span]:
    """The spans of the trace whose users server span has this request id, once orgs' part
    has arrived too (each process exports on its own schedule)."""
    deadline = time.monotonic() + EXPORT_DEADLINE_SECONDS
    while True:
        roots = [s for s in receiver.find(**{"request.id": request_id}) if s.service == "users"]
        if roots:
            spans = receiver.trace(roots[0].trace_id)
            services = {s.service for s in spans if s.kind == "server"}
            if services >= {"users", "orgs"}:
                time.sleep(0.5)  # the last batches of both processes
                return receiver.trace(roots[0].trace_id)
        if time.monotonic() > deadline:
            seen = sorted(
                {(s.service, s.name) for s in receiver.find(**{"request.id": request_id})}
            )
            raise AssertionError(f"no trace users -> orgs for {request_id}; spans with it: {seen}")
        time.sleep(0.1)


def test_me_is_one_trace_across_users_and_orgs(
    api: httpx.Client, accounts: Any, platform: Any, otlp_receiver: OtlpReceiver
) -> None:
    person = accounts.create("tracer")
    request_id = f"trace-{secrets.token_hex(8)}"
    me = api.get("/api/v1/users/me", headers={**person.auth, "X-Request-ID": request_id})
    assert me.status_code == 200, me.text
    assert me.json()["organizations"] == []  # answered by orgs, not degraded
    assert me.headers["x-request-id"] == request_id

    spans = wait_for_trace(otlp_receiver, request_id)
    by_id = {s.span_id: s for s in spans}

    # Both services' server spans carry the request id, and they are one trace.
    servers = {s.service: s for s in spans if s.kind == "server"}
    assert servers["users"].attributes["request.id"] == request_id
    assert servers["orgs"].attributes["request.id"] == request_id
    assert {s.trace_id for s in otlp_receiver.find(**{"request.id": request_id})} == {
        servers["users"].trace_id
    }

    # orgs' server span is a child of users' call to orgs (the httpx client span inside the
    # service client's span), which descends from users' server span.
    def ancestors(span: Span) -> list[Span]:
        chain = []
        while span.parent_span_id in by_id:
            span = by_id[span.parent_span_id]
            chain.append(span)
        return chain

    orgs_chain = ancestors(servers["orgs"])
    assert orgs_chain and orgs_chain[0].kind == "client" and orgs_chain[0].service == "users"
    assert orgs_chain[0].scope == "opentelemetry.instrumentation.httpx"
    assert servers["users"] in orgs_chain

    # Database and Redis spans, of both services, in the same trace under their request.
    def spans_of(service: str, system: str) -> list[Span]:
        return [
            s
            for s in spans
            if s.service == service
            and s.attributes.get("db.system", s.attributes.get("db.system.name")) == system
        ]

    for service in ("users", "orgs"):
        assert spans_of(service, "postgresql"), f"no database span of {service}"
        assert servers[service] in ancestors(spans_of(service, "postgresql")[0])
    assert spans_of("users", "redis"), "no Redis span of users"

    # users' access log line of the request carries the trace and its span.
    def logged() -> str | None:
        for line in platform["users"].log_text().splitlines():
            if f"[{request_id}]" in line and "/api/v1/users/me" in line:
                return line
        return None

    deadline = time.monotonic() + 5
    while (line := logged()) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert line is not None, "no log line of the request"
    match = re.search(r"trace_id=([0-9a-f]{32}) span_id=([0-9a-f]{16})", line)
    assert match, line
    assert match[1] == servers["users"].trace_id
    assert match[2] in by_id
