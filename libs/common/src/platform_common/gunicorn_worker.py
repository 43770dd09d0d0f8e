"""The uvicorn worker the production command runs (gunicorn's `worker_class`).

uvicorn's defaults are changed where the platform does the job itself or where the default
gives something away:
- `proxy_headers=False`: the app reads X-Forwarded-For itself, through `*_TRUSTED_PROXIES`
  (platform_common.client_address); uvicorn's middleware would also cost every request a layer.
- `server_header=False`: no `Server: uvicorn` announcing what to attack.
"""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker


class PlatformWorker(UvicornWorker):  # type: ignore[misc]  # uvicorn_worker is untyped
    CONFIG_KWARGS: dict[str, Any] = {
        **UvicornWorker.CONFIG_KWARGS,
        "proxy_headers": False,
        "server_header": False,
    }
