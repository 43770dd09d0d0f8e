"""Shared pieces of the deployment tests: where helm and promtool are, and the chart rendered.

Every values file is rendered once per test session (``renders``); tests that need a variant
(a switch turned on, a typo in the values) render it themselves, which takes ~50 ms.
A missing tool fails the tests with the command that installs it: a skipped chart test in
CI would pass a broken chart.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from platform_testing import require_tool

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "deploy" / "helm" / "identity-platform"
SERVICES = ("auth", "users", "orgs")
RELEASE = "identity-platform"
NAMESPACE = "identity"

# name -> extra helm arguments. The first three are the chart's values files.
VARIANTS: dict[str, list[str]] = {
    "default": [],
    "dev": ["-f", str(CHART_DIR / "values-dev.yaml")],
    "prod": ["-f", str(CHART_DIR / "values-prod.yaml")],
    # Everything switched on, so the Gateway API route is rendered and validated too.
    "prod-gateway": ["-f", str(CHART_DIR / "values-prod.yaml"), "--set", "httpRoute.enabled=true"],
}
VALUES_FILES = ("default", "dev", "prod")

Manifest = list[dict[str, Any]]


def find_tool(env_var: str, local: Path | None, name: str, install_hint: str) -> str:
    """$env_var, then the repository-local copy, then PATH; fail (never skip) otherwise."""
    return require_tool(name, install_hint, env_var, local)


def find_helm() -> str:
    return find_tool(
        "HELM", REPO_ROOT / ".tools" / "bin" / "helm", "helm", "run `bash scripts/install-helm.sh`"
    )


def find_promtool() -> str:
    return find_tool("PROMTOOL", None, "promtool", "install it with `apt-get install prometheus`")


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, check=False, timeout=60)


def render(helm: str, *extra: str, release: str = RELEASE) -> Manifest:
    result = run_helm(helm, "template", release, str(CHART_DIR), "--namespace", NAMESPACE, *extra)
    assert result.returncode == 0, f"helm template {' '.join(extra)} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def helm() -> str:
    return find_helm()


@pytest.fixture(scope="session")
def renders(helm: str) -> dict[str, Manifest]:
    return {name: render(helm, *args) for name, args in VARIANTS.items()}


def of_kind(manifest: Manifest, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in manifest if doc["kind"] == kind]


def named(manifest: Manifest, kind: str, name: str) -> dict[str, Any]:
    matches = [doc for doc in of_kind(manifest, kind) if doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def component(name: str, release: str = RELEASE) -> str:
    """Object name of a service's objects; the release name contains the chart name."""
    return f"{release}-{name}"


def pod_specs(manifest: Manifest) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(object, pod spec) of every object that runs containers."""
    for doc in manifest:
        if doc["kind"] in {"Deployment", "StatefulSet", "Job", "DaemonSet"}:
            yield doc, doc["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            yield doc, doc["spec"]
