"""The Tiltfile, evaluated with starlark-pyo3 and Python stand-ins for Tilt's built-ins.

The stand-ins have Tilt's signatures (an argument Tilt does not know fails the evaluation)
and record every call; helm() really runs `helm template` with the arguments the Tiltfile
gives it, so the image and workload names below are checked against what Tilt would deploy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import starlark
import yaml

from .conftest import CHART_DIR, REPO_ROOT, SERVICES, Manifest, find_helm, run_helm

TILTFILE = REPO_ROOT / "Tiltfile"
LOCAL_PORTS = {"auth": 8001, "users": 8002, "orgs": 8003}
MANUAL = "TRIGGER_MODE_MANUAL"


def as_list(value: str | Sequence[Any] | None) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


@dataclass
class TiltRecorder:
    """Tilt's built-ins as far as the Tiltfile uses them; every call is kept."""

    helm_binary: str
    docker_builds: list[dict[str, Any]] = field(default_factory=list)
    helm_calls: list[dict[str, Any]] = field(default_factory=list)
    k8s_yamls: list[str] = field(default_factory=list)
    k8s_resources: list[dict[str, Any]] = field(default_factory=list)
    local_resources: list[dict[str, Any]] = field(default_factory=list)

    def builtins(self) -> dict[str, Any]:
        return {
            "docker_build": self.docker_build,
            "helm": self.helm,
            "k8s_yaml": self.k8s_yaml,
            "k8s_resource": self.k8s_resource,
            "local_resource": self.local_resource,
            "sync": sync,
            "run": run,
            "fall_back_on": fall_back_on,
            "link": link,
        }

    def docker_build(
        self,
        ref: str,
        context: str,
        build_args: dict[str, str] | None = None,
        dockerfile: str = "Dockerfile",
        dockerfile_contents: str = "",
        live_update: Sequence[dict[str, Any]] = (),
        match_in_env_vars: bool = False,
        ignore: str | Sequence[str] = (),
        only: str | Sequence[str] = (),
        entrypoint: str | Sequence[str] = (),
        target: str = "",
        ssh: str | Sequence[str] = "",
        network: str = "",
        secret: str | Sequence[str] = "",
        extra_tag: str | Sequence[str] = "",
        container_args: Sequence[str] | None = None,
        cache_from: str | Sequence[str] = (),
        pull: bool = False,
        platform: str = "",
    ) -> None:
        self.docker_builds.append(
            {
                "ref": ref,
                "context": context,
                "dockerfile": dockerfile,
                "build_args": dict(build_args or {}),
                "target": target,
                "only": as_list(only),
                "live_update": list(live_update),
            }
        )

    def helm(
        self,
        pathToChartDir: str,  # noqa: N803 - Tilt's own parameter name
        name: str = "",
        namespace: str = "",
        values: str | Sequence[str] = (),
        set: str | Sequence[str] = (),
        kube_version: str = "",
        skip_crds: bool = False,
    ) -> str:
        args = ["template", name or "chart", str(REPO_ROOT / pathToChartDir)]
        if namespace:
            args += ["--namespace", namespace]
        for path in as_list(values):
            args += ["--values", str(REPO_ROOT / path)]
        for assignment in as_list(set):
            args += ["--set", assignment]
        result = run_helm(self.helm_binary, *args)
        assert result.returncode == 0, result.stderr
        self.helm_calls.append(
            {"chart": pathToChartDir, "name": name, "values": as_list(values), "set": as_list(set)}
        )
        return result.stdout

    def k8s_yaml(self, yaml: str | Sequence[str], allow_duplicates: bool = False) -> None:
        self.k8s_yamls.extend(as_list(yaml))

    def k8s_resource(
        self,
        workload: str = "",
        new_name: str = "",
        port_forwards: str | int | Sequence[str | int] = (),
        extra_pod_selectors: Any = (),
        trigger_mode: str = "TRIGGER_MODE_AUTO",
        resource_deps: Sequence[str] = (),
        objects: Sequence[str] = (),
        auto_init: bool = True,
        pod_readiness: str = "",
        links: Any = (),
        labels: str | Sequence[str] = (),
        discovery_strategy: str = "",
    ) -> None:
        self.k8s_resources.append(
            {
                "workload": workload,
                "name": new_name or workload,
                "port_forwards": [str(p) for p in as_list(port_forwards)],  # type: ignore[arg-type]
                "resource_deps": list(resource_deps),
                "labels": as_list(labels),
            }
        )

    def local_resource(
        self,
        name: str,
        cmd: str | Sequence[str] = "",
        deps: str | Sequence[str] | None = None,
        trigger_mode: str = "TRIGGER_MODE_AUTO",
        resource_deps: Sequence[str] = (),
        ignore: str | Sequence[str] = (),
        auto_init: bool = True,
        serve_cmd: str | Sequence[str] = "",
        cmd_bat: str | Sequence[str] = "",
        serve_cmd_bat: str | Sequence[str] = "",
        allow_parallel: bool = False,
        links: Any = (),
        tags: Sequence[str] = (),
        env: dict[str, str] | None = None,
        serve_env: dict[str, str] | None = None,
        readiness_probe: Any = None,
        dir: str = "",
        serve_dir: str = "",
        labels: str | Sequence[str] = (),
    ) -> None:
        self.local_resources.append(
            {
                "name": name,
                "cmd": cmd,
                "deps": as_list(deps),
                "trigger_mode": trigger_mode,
                "auto_init": auto_init,
                "resource_deps": list(resource_deps),
            }
        )


def sync(local_path: str, remote_path: str) -> dict[str, Any]:
    return {"step": "sync", "local": local_path, "remote": remote_path}


def run(
    cmd: str | Sequence[str], trigger: str | Sequence[str] = (), echo_off: bool = False
) -> dict[str, Any]:
    return {"step": "run", "cmd": cmd, "trigger": as_list(trigger)}


def fall_back_on(files: str | Sequence[str]) -> dict[str, Any]:
    return {"step": "fall_back_on", "files": as_list(files)}


def link(url: str, name: str | None = None) -> dict[str, Any]:
    return {"url": url, "name": name}


@pytest.fixture(scope="module")
def tilt() -> TiltRecorder:
    recorder = TiltRecorder(helm_binary=find_helm())
    module = starlark.Module()
    for name, function in recorder.builtins().items():
        module.add_callable(name, function)
    module["TRIGGER_MODE_AUTO"] = "TRIGGER_MODE_AUTO"
    module["TRIGGER_MODE_MANUAL"] = MANUAL
    dialect = starlark.Dialect.standard()
    dialect.enable_top_level_stmt = True  # Tilt allows `for` and `if` at the top level
    ast = starlark.parse("Tiltfile", TILTFILE.read_text(), dialect)
    starlark.eval(module, ast, starlark.Globals.standard())
    return recorder


@pytest.fixture(scope="module")
def deployed(tilt: TiltRecorder) -> Manifest:
    return [doc for text in tilt.k8s_yamls for doc in yaml.safe_load_all(text) if doc]


def image_repository(image: str) -> str:
    return re.sub(r":[^:/]+$", "", image.split("@")[0])


def test_every_path_the_tiltfile_names_exists(tilt: TiltRecorder) -> None:
    paths: list[str] = []
    for build in tilt.docker_builds:
        paths += [build["context"], build["dockerfile"], *build["only"]]
        for step in build["live_update"]:
            paths += {"sync": [step.get("local")], "run": step.get("trigger", [])}.get(
                step["step"], step.get("files", [])
            )
    for call in tilt.helm_calls:
        paths += [call["chart"], *call["values"]]
    for resource in tilt.local_resources:
        paths += resource["deps"]
    assert len(paths) > 20
    missing = [p for p in paths if not (REPO_ROOT / p).exists()]
    assert not missing


def test_each_service_image_is_built_from_its_dev_target(tilt: TiltRecorder) -> None:
    builds = {b["ref"]: b for b in tilt.docker_builds}
    assert set(builds) == {f"identity-platform/{name}" for name in SERVICES}
    for name in SERVICES:
        build = builds[f"identity-platform/{name}"]
        # One Dockerfile for every service; the build argument names the service.
        assert build["dockerfile"] == "Dockerfile"
        assert build["build_args"] == {"SERVICE": name}
        assert build["target"] == "dev"
        dockerfile = (REPO_ROOT / build["dockerfile"]).read_text()
        assert re.search(r"^FROM \S+ AS dev$", dockerfile, re.MULTILINE)
        steps = build["live_update"]
        syncs = {s["local"]: s["remote"] for s in steps if s["step"] == "sync"}
        assert syncs[f"services/{name}/src"] == f"/app/services/{name}/src"
        assert syncs["libs/common/src"] == "/app/libs/common/src"
        (uv_sync,) = [s for s in steps if s["step"] == "run"]
        assert uv_sync["cmd"].startswith("uv sync --frozen")
        assert "uv.lock" in uv_sync["trigger"]
        # Tilt only runs a step for files that are also synced.
        assert set(uv_sync["trigger"]) <= set(syncs)
        order = [s["step"] for s in steps]
        assert order == sorted(order, key=["fall_back_on", "sync", "run"].index)


def test_built_images_are_the_ones_the_dev_chart_runs(helm: str, tilt: TiltRecorder) -> None:
    result = run_helm(
        helm,
        "template",
        "identity-platform",
        str(CHART_DIR),
        "-f",
        str(CHART_DIR / "values-dev.yaml"),
    )
    assert result.returncode == 0, result.stderr
    images = set()
    for doc in yaml.safe_load_all(result.stdout):
        if doc and doc["kind"] in {"Deployment", "Job", "StatefulSet"}:
            images |= {c["image"] for c in doc["spec"]["template"]["spec"]["containers"]}
    repositories = {image_repository(i) for i in images}
    for build in tilt.docker_builds:
        assert build["ref"] in repositories
    (call,) = tilt.helm_calls
    assert call["chart"] == "deploy/helm/identity-platform"
    assert call["values"] == ["deploy/helm/identity-platform/values-dev.yaml"]


def test_each_service_is_forwarded_after_its_migration_and_dependencies(
    tilt: TiltRecorder, deployed: Manifest
) -> None:
    workloads = {
        d["metadata"]["name"] for d in deployed if d["kind"] in {"Deployment", "StatefulSet", "Job"}
    }
    resources = {r["name"]: r for r in tilt.k8s_resources}
    for resource in tilt.k8s_resources:
        assert resource["workload"] in workloads, resource["workload"]
    known = set(resources) | {r["name"] for r in tilt.local_resources}
    for name in SERVICES:
        resource = resources[name]
        assert resource["port_forwards"] == [f"{LOCAL_PORTS[name]}:8000"]
        assert set(resource["resource_deps"]) == {f"{name}-migrate", "postgres", "redis"}
        assert "postgres" in resources[f"{name}-migrate"]["resource_deps"]
        assert resource["labels"]
    for resource in [*tilt.k8s_resources, *tilt.local_resources]:
        assert set(resource["resource_deps"]) <= known


def test_migrations_run_as_plain_jobs_and_nothing_waits_on_a_hook(deployed: Manifest) -> None:
    for doc in deployed:
        assert "helm.sh/hook" not in doc["metadata"].get("annotations", {}), doc["metadata"]
    assert len([d for d in deployed if d["kind"] == "Job"]) == len(SERVICES)


def test_test_suites_are_manual_local_resources(tilt: TiltRecorder) -> None:
    suites = [r for r in tilt.local_resources if "test" in r["name"]]
    assert any(r["cmd"] == "make test" for r in suites)
    for resource in suites:
        assert resource["trigger_mode"] == MANUAL
        assert resource["auto_init"] is False
