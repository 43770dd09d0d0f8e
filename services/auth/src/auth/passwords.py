"""Password hashing (Argon2id, off the event loop) and the password policy."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import sys
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


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def return_hash_memory_to_the_os() -> None:
    """Keep Argon2's working memory (memory_kib, 19 MiB a hash) out of the heap.

    glibc serves a block that large with mmap and unmaps it on free, but after the first such
    free it raises its mmap threshold to that size, so from then on each hashing thread takes
    the block from its own heap arena and keeps it: a login burst left the auth worker about
    95 MB larger for good (bench/README.md). Setting the threshold fixes it (and turns the
    adjustment off), so every hash gives its memory back. A no-op outside glibc.
    """
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 1 << 20)


class PasswordHasher:
    """Argon2id through pwdlib. Hashing and verifying run in a worker thread (argon2-cffi
    releases the GIL), so a login never blocks the event loop."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
        return_hash_memory_to_the_os()
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
