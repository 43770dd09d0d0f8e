"""Running wrk, reading its report, and turning rounds of results into the tables."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Scenario:
    """One wrk load: `extra` are wrk arguments (headers), `script` a Lua file in bench/,
    `during` a second load that runs in the background for the whole scenario."""

    name: str
    what: str
    url: str
    extra: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    script: str | None = None
    connections: int | None = None
    during: Scenario | None = None


@dataclass
class Result:
    name: str
    what: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    non2xx: int = 0
    timeouts: int = 0


def error_detail(errors: int, non2xx: int, timeouts: int) -> str:
    """The errors, split: answers other than 2xx/3xx, client timeouts, other socket errors."""
    if not errors:
        return "0"
    other = errors - non2xx - timeouts
    parts = [f"{non2xx} non-2xx"] if non2xx else []
    parts += [f"{timeouts} timeouts"] if timeouts else []
    parts += [f"{other} socket"] if other else []
    return f"{errors} ({', '.join(parts)})"


def wrk_command(scenario: Scenario, duration: float, connections: int) -> list[str]:
    command = ["wrk", "-t", "2", "-c", str(scenario.connections or connections)]
    command += ["-d", f"{duration:g}s", "--latency", "--timeout", "5s", *scenario.extra]
    if scenario.script:
        command += ["-s", str(BENCH / scenario.script)]
    return [*command, scenario.url]


def parse(scenario: Scenario, out: str) -> Result:
    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad_answers = int(non2xx.group(1)) if non2xx else 0
    timeouts = int(sock.group(4)) if sock else 0
    errors = bad_answers + (sum(int(g) for g in sock.groups()) if sock else 0)
    return Result(
        scenario.name,
        scenario.what,
        rps,
        latency("50"),
        latency("99"),
        errors,
        bad_answers,
        timeouts,
    )


def run(scenario: Scenario, duration: float, connections: int) -> Result:
    """Run one scenario (and its background load, if any) and print its line."""
    background = None
    if scenario.during:
        background = subprocess.Popen(
            wrk_command(scenario.during, duration + 1, connections),
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **scenario.during.env},
        )
    out = subprocess.run(
        wrk_command(scenario, duration, connections),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **scenario.env},
    ).stdout
    if background:
        background.communicate()
    result = parse(scenario, out)
    print(
        f"  {result.name:<40} {result.rps:>7.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
        f"p99 {result.p99_ms:7.2f} ms  errors "
        f"{error_detail(result.errors, result.non2xx, result.timeouts)}",
        flush=True,
    )
    return result


@dataclass
class Row:
    """A scenario over all rounds: medians, the median ratio to the bare endpoint of the same
    round and configuration, and every error of every round."""

    name: str
    what: str
    rps: float
    ratio: float
    p50_ms: float
    p99_ms: float
    errors: int
    non2xx: int
    timeouts: int


def summarise(rounds: list[list[Result]]) -> list[Row]:
    """rounds[i] is one round, its first result the bare endpoint of that round."""
    rows = []
    for index, first in enumerate(rounds[0]):
        results = [round_[index] for round_ in rounds]
        ratios = [round_[index].rps / (round_[0].rps or 1) for round_ in rounds]
        rows.append(
            Row(
                first.name,
                first.what,
                statistics.median(r.rps for r in results),
                statistics.median(ratios),
                statistics.median(r.p50_ms for r in results),
                statistics.median(r.p99_ms for r in results),
                sum(r.errors for r in results),
                sum(r.non2xx for r in results),
                sum(r.timeouts for r in results),
            )
        )
    return rows


def table(rows: list[Row]) -> list[str]:
    lines = [
        "| scenario | what it does | req/s | vs bare FastAPI | p50 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.name} | {r.what} | {r.rps:.0f} | {r.ratio:.1%} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
        f"| {error_detail(r.errors, r.non2xx, r.timeouts)} |"
        for r in rows
    ]
    return lines
