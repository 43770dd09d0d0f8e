"""The embedded Redis of `make up`: one real server per data folder, shared by processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from platform_testing.embedded_redis import ensure_embedded_redis, stop_embedded_redis


def test_processes_of_one_data_folder_share_one_server(tmp_path: Path) -> None:
    url = ensure_embedded_redis(tmp_path)
    try:
        Redis.from_url(url).set("written-here", "1")
        # Another process (another service) asking for the same folder's Redis joins it.
        other = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; from redis import Redis; "
                "from platform_testing.embedded_redis import ensure_embedded_redis; "
                "url = ensure_embedded_redis(Path(sys.argv[1])); "
                "print(url, Redis.from_url(url).get('written-here').decode())",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert other.stdout.split() == [url, "1"]
        pids = (tmp_path / "redis.pid").read_text().split()
        assert len(pids) == 1
    finally:
        stop_embedded_redis(tmp_path)
    with pytest.raises(RedisConnectionError):
        Redis.from_url(url, socket_connect_timeout=0.5).ping()
