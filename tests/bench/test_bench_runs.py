"""`bench/run.py --quick` against the production command: the bench still works and no
scenario answers an error. It asserts no timing (those are for bench/README.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from platform_testing import Backends

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_the_quick_bench_runs_every_scenario_without_errors(
    backends: Backends, tmp_path: Path
) -> None:
    if not shutil.which("wrk"):
        if os.environ.get("CI"):
            pytest.fail("wrk is not installed (apt-get install wrk)")
        pytest.skip("wrk is not installed (apt-get install wrk)")
    out = tmp_path / "quick.md"
    env = {
        **os.environ,
        "BENCH_DATABASE_URL": make_url(backends.admin_url).render_as_string(hide_password=False),
        "BENCH_REDIS_URL": backends.redis_url,
    }
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--out", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = out.read_text()
    results, _, targets = table.partition("| target |")
    for scenario in (
        "bare FastAPI /ping",
        "users GET /users/{own id}",
        "S1 at 512 connections",
        "S3 at 512 connections (2 workers)",
        "S1 during a login flood",
        "auth POST /refresh",
    ):
        assert f"| {scenario} |" in results
    rows = [line for line in results.splitlines() if line.startswith("| ") and "req/s" not in line]
    assert rows and all(line.rstrip(" |").endswith("| 0") for line in rows), table
    # every target of the performance issue has its figure (met or not)
    assert targets.count("\n| ") >= 14, table
