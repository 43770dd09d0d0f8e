"""The production command can serve the live socket (WebSocket /api/v1/orgs/{slug}/live):
the image's venv holds the `websockets` package (uvicorn[standard], a dependency of
platform-common), so gunicorn's uvicorn worker has a WebSocket protocol to upgrade with."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PROBE = """
from uvicorn.config import Config
from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol
from platform_common.gunicorn_worker import PlatformWorker
import websockets
assert AutoWebSocketsProtocol is not None, "no WebSocket protocol: upgrades would be refused"
ws = PlatformWorker.CONFIG_KWARGS.get("ws", "auto")
assert ws in ("auto", "websockets", "websockets-sansio"), ws
config = Config(app=lambda *a: None, ws=ws)
config.load()
print(config.ws_protocol_class.__name__, websockets.__version__)
"""


def test_the_production_venv_serves_websockets(image_venv: Path) -> None:
    result = subprocess.run(
        [str(image_venv / "bin" / "python"), "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("WebSocketsSansIOProtocol"), result.stdout
