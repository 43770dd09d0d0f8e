"""A real Prometheus for the tests: scrape configs in, PromQL answers out.

```
PrometheusServer(binary, root, scrape_configs, rule_groups).start()
  writes <root>/prometheus.yml (1 s scrape and evaluation interval) and <root>/rules.yaml,
  runs
  prometheus --config.file ... --storage.tsdb.path <root>/tsdb on a free port
  wait_ready(): /-/ready answers 200
  query(promql) / query_range(promql, start, end, step) / label_values(label, match)
  stop(): SIGTERM then SIGKILL to its process group
```

`scrape_configs_from_service_monitors` turns the chart's ServiceMonitors into the scrape
configs the Prometheus Operator would generate for them (their `relabelings` verbatim, the
`namespace`, `service`, `job` and `endpoint` labels the operator adds), pointed at the given
targets, so a test scrapes the services exactly as the chart has them scraped.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from platform_testing.processes import free_port, log_tail, spawn, stop_process_group

HOST = "127.0.0.1"
SCRAPE_INTERVAL = "1s"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def relabel_config(relabeling: dict[str, Any]) -> dict[str, Any]:
    """A ServiceMonitor `RelabelConfig` (camelCase) as Prometheus' `relabel_config`."""
    return {_snake(key): value for key, value in relabeling.items()}


def scrape_configs_from_service_monitors(
    monitors: list[dict[str, Any]], targets: dict[str, str]
) -> list[dict[str, Any]]:
    """One scrape config per ServiceMonitor endpoint; `targets` maps the service's
    `app.kubernetes.io/component` (auth, users, orgs) to a host:port to scrape."""
    configs = []
    for monitor in monitors:
        spec = monitor["spec"]
        component = spec["selector"]["matchLabels"]["app.kubernetes.io/component"]
        namespace = spec["namespaceSelector"]["matchNames"][0]
        service = monitor["metadata"]["name"]
        for index, endpoint in enumerate(spec["endpoints"]):
            configs.append(
                {
                    "job_name": f"serviceMonitor/{namespace}/{service}/{index}",
                    "metrics_path": endpoint.get("path", "/metrics"),
                    "scrape_interval": SCRAPE_INTERVAL,
                    "static_configs": [
                        {
                            "targets": [targets[component]],
                            # What the operator's Kubernetes service discovery yields.
                            "labels": {
                                "namespace": namespace,
                                "service": service,
                                "job": service,
                                "endpoint": endpoint.get("port", "http"),
                            },
                        }
                    ],
                    "relabel_configs": [relabel_config(r) for r in endpoint.get("relabelings", [])],
                    "metric_relabel_configs": [
                        relabel_config(r) for r in endpoint.get("metricRelabelings", [])
                    ],
                }
            )
    return configs


class PrometheusServer:
    def __init__(
        self,
        binary: str,
        root: Path,
        scrape_configs: list[dict[str, Any]],
        rule_groups: list[dict[str, Any]] | None = None,
    ) -> None:
        self.binary = binary
        self.root = root
        self.scrape_configs = scrape_configs
        self.rule_groups = rule_groups or []
        self.port = free_port()
        self.log_path = root / "prometheus.log"
        self.proc: Any = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        config = self.root / "prometheus.yml"
        rules = self.root / "rules.yaml"
        rules.write_text(yaml.safe_dump({"groups": self.rule_groups}))
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {
                        "scrape_interval": SCRAPE_INTERVAL,
                        "evaluation_interval": SCRAPE_INTERVAL,
                    },
                    "rule_files": [str(rules)],
                    "scrape_configs": self.scrape_configs,
                }
            )
        )
        command = [
            self.binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.root / 'tsdb'}",
            f"--web.listen-address={HOST}:{self.port}",
            "--log.level=warn",
        ]
        self.proc = spawn(command, self.log_path, self.root)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("prometheus exited:\n" + log_tail(self.log_path))
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("prometheus was not ready:\n" + log_tail(self.log_path))

    def wait_for(self, promql: str, timeout: float = 30.0) -> None:
        """Until `promql` returns something (the first scrapes, say)."""
        deadline = time.monotonic() + timeout
        while not self.query(promql):
            if time.monotonic() > deadline:
                raise AssertionError(f"{promql} returned nothing within {timeout:g} s")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)

    def _api(self, path: str, params: dict[str, Any]) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10.0)
        body = response.json()
        assert body.get("status") == "success", (path, params, body)
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        data = self._api("query", {"query": promql})
        return list(data["result"])

    def query_range(
        self, promql: str, start: float, end: float, step: float
    ) -> list[dict[str, Any]]:
        data = self._api("query_range", {"query": promql, "start": start, "end": end, "step": step})
        return list(data["result"])

    def label_values(self, label: str, match: str) -> list[str]:
        return list(self._api(f"label/{label}/values", {"match[]": match}))

    def report(self) -> str:
        return log_tail(self.log_path)
