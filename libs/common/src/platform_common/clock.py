"""The one clock of the platform: aware UTC instants, so nothing mixes naive and aware."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
