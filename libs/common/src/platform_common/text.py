"""Strings PostgreSQL can store.

PostgreSQL's `text` and `varchar` reject the NUL character (U+0000), so a request that
carries one must fail validation (422), not the INSERT or the WHERE clause (500). `NO_NUL`
is the `pattern` of every free-text field, query or path parameter that reaches the
database; being a pattern, it is published in the OpenAPI for clients (and fuzzers) to see.
"""

from __future__ import annotations

NO_NUL = r"^[^\x00]*$"


def has_nul(value: str) -> bool:
    """For inputs that are looked up rather than validated (an unknown value, not a 422)."""
    return "\x00" in value
