"""Running wrk and reading its report."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass
class Result:
    name: str
    what: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    non2xx: int = 0
    timeouts: int = 0

    @property
    def error_detail(self) -> str:
        """The errors, split: answers other than 2xx/3xx, client timeouts, other socket errors."""
        if not self.errors:
            return "0"
        other = self.errors - self.non2xx - self.timeouts
        parts = [f"{self.non2xx} non-2xx"] if self.non2xx else []
        parts += [f"{self.timeouts} timeouts"] if self.timeouts else []
        parts += [f"{other} socket"] if other else []
        return f"{self.errors} ({', '.join(parts)})"


def wrk(
    name: str,
    what: str,
    url: str,
    args: argparse.Namespace,
    *extra: str,
    env: dict[str, str] | None = None,
) -> Result | None:
    """One scenario's figures; None when --only leaves it out (the baseline always runs)."""
    only = getattr(args, "only", None)
    if only and not name.startswith("bare") and not any(part in name for part in only):
        return None
    command = [
        "wrk",
        "-t",
        "2",
        "-c",
        str(args.connections),
        "-d",
        f"{args.duration}s",
        "--latency",
        "--timeout",
        "5s",
        *extra,
        url,
    ]
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, env={**os.environ, **(env or {})}
    ).stdout

    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad_answers = int(non2xx.group(1)) if non2xx else 0
    timeouts = int(sock.group(4)) if sock else 0
    errors = bad_answers + (sum(int(g) for g in sock.groups()) if sock else 0)
    result = Result(
        name, what, rps, latency("50"), latency("99"), errors, total, bad_answers, timeouts
    )
    print(
        f"  {name:<28} {rps:>9.0f} req/s  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:7.2f} ms  errors {result.error_detail}",
        flush=True,
    )
    return result


def write_table(results: list[Result], args: argparse.Namespace, notes: list[str]) -> str:
    """The results as markdown, each figure beside its ratio to the bare endpoint (the first
    result), written to args.out; returned for printing."""
    baseline = results[0].rps
    lines = [
        f"# Benchmark results ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"`uv run python bench/run.py --duration {args.duration} --connections {args.connections} --workers {args.workers}`"
        f" on {os.cpu_count()} cores; wrk on the same machine (2 threads), PostgreSQL and Redis local.",
        "",
        "| scenario | what it does | req/s | vs bare FastAPI | p50 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.name} | {r.what} | {r.rps:.0f} | {r.rps / baseline:.0%} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.error_detail} |"
        for r in results
    ]
    lines += ["", *notes]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return text
