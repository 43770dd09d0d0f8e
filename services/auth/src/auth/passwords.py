"""Password hashing (Argon2id, off the event loop) and the password policy."""

from __future__ import annotations

import asyncio
from functools import cache
from importlib.resources import files

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from auth.errors import WeakPassword

MIN_LENGTH = 8
MAX_LENGTH = 128


@cache
def common_passwords() -> frozenset[str]:
    text = files("auth").joinpath("data/common-passwords.txt").read_text(encoding="utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line and not line.startswith("#")
    )


def check_password_policy(password: str, email: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"The password must have at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"The password must have at most {MAX_LENGTH} characters.")
    if password.strip().lower() == email.strip().lower():
        raise WeakPassword("The password must not be the email address.")
    if password.lower() in common_passwords():
        raise WeakPassword("This password is one of the most common ones; choose another.")


class PasswordHasher:
    """Argon2id through pwdlib. Hashing and verifying run in a worker thread (argon2-cffi
    releases the GIL), so a login never blocks the event loop."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hash = PasswordHash(
            (Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism),)
        )
        # Verified against for unknown emails, so both paths take the same time.
        self.dummy_hash = self._hash.hash("dummy password for timing equality")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hash.hash, password)

    async def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        """(valid, new hash when the stored one uses outdated parameters)."""
        return await asyncio.to_thread(self._hash.verify_and_update, password, password_hash)
