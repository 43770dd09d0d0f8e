"""`--profile SERVICE`: py-spy on that service's worker while each scenario runs, summed per
function (self and inclusive share of the samples), next to the figures."""

from __future__ import annotations

import collections
import re
import subprocess
import sys
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"


def start(worker_pid: int, seconds: float, raw: Path) -> subprocess.Popen[bytes]:
    """Sample the worker (without pausing it) for most of the scenario."""
    command = [str(PY_SPY), "record", "--pid", str(worker_pid), "--duration"]
    command += [str(max(1, int(seconds) - 1)), "--format", "raw", "-o", str(raw), "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summary(raw: Path, top: int = 25) -> str:
    """The functions with the most samples: inclusive (it or what it called was running) and
    self (it was the running frame)."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if not total:
        return "no samples"
    # The frames every stack goes through (gunicorn, the event loop) say nothing.
    skip = re.compile(r"gunicorn|uvicorn_worker|asyncio/runners|uvicorn/_compat|<module>")

    def lines(counter: collections.Counter[str]) -> list[str]:
        shown = [(f, n) for f, n in counter.most_common() if not skip.search(f)][:top]
        return [f"  {100 * n / total:5.1f} %  {frame}" for frame, n in shown]

    return "\n".join([f"{total} samples", "inclusive:", *lines(inclusive), "self:", *lines(own)])
