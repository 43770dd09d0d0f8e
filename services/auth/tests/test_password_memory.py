"""Argon2's 19 MiB a hash goes back to the OS after a burst of logins (auth.passwords)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

BURST = textwrap.dedent(
    """
    import asyncio, re, sys
    from auth.passwords import PasswordHasher, return_hash_memory_to_the_os

    def rss_mb():
        status = open("/proc/self/status").read()
        return int(re.search(r"VmRSS:\\s+(\\d+) kB", status).group(1)) / 1024

    if sys.argv[1] == "off":  # what glibc does by default: the threshold adapts
        import auth.passwords
        auth.passwords.return_hash_memory_to_the_os = lambda: None
        hasher = auth.passwords.PasswordHasher(time_cost=1, memory_kib=19_456, parallelism=1)
    else:
        hasher = PasswordHasher(time_cost=1, memory_kib=19_456, parallelism=1)

    async def burst():
        for _ in range(3):
            await asyncio.gather(*(hasher.hash(f"password {i}") for i in range(6)))

    before = rss_mb()
    asyncio.run(burst())
    print(rss_mb() - before)
    """
)


def grown_mb(mode: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", BURST, mode], capture_output=True, text=True, check=True
    ).stdout
    return float(out.strip().splitlines()[-1])


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's allocator")
def test_a_burst_of_hashes_leaves_the_worker_no_larger() -> None:
    # Six hashes at a time (the thread pool's size on two cores), three times over.
    assert grown_mb("on") < 25
    # The check has teeth: with glibc's adaptive threshold the same burst keeps the memory.
    assert grown_mb("off") > 50
