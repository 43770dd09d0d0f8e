"""Opaque bearer secrets (refresh tokens, invitation tokens, client secrets) and their hashes.

A token is 32 random bytes, URL-safe, with an optional prefix that says what it is (so a
secret scanner can recognise it). Only its SHA-256 is stored: these are high-entropy random
values, so a slow hash adds nothing, and a stolen table gives nothing usable. Comparisons of
presented secrets with stored hashes go through `hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import NamedTuple

TOKEN_BYTES = 32


class OpaqueToken(NamedTuple):
    value: str  # handed to the client once
    hash: str  # what is stored


def hash_token(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_token(prefix: str = "", nbytes: int = TOKEN_BYTES) -> OpaqueToken:
    value = prefix + secrets.token_urlsafe(nbytes)
    return OpaqueToken(value, hash_token(value))


def matches_hash(value: str, stored_hash: str) -> bool:
    """Whether `value` hashes to `stored_hash`, in constant time."""
    return hmac.compare_digest(hash_token(value), stored_hash)
