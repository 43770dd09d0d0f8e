"""The Helm chart: lint, schema validation of what it renders, and the rules it must keep."""

from __future__ import annotations

import base64
import copy
import json
import re
from typing import Any

import kubernetes_validate
import pytest
import yaml

from .conftest import (
    CHART_DIR,
    RELEASE,
    SERVICES,
    VALUES_FILES,
    VARIANTS,
    Manifest,
    component,
    named,
    of_kind,
    pod_specs,
    render,
    run_helm,
)

# The oldest Kubernetes minor the chart supports and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
# Not in Kubernetes' own schemas: checked by check_custom_resource below.
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
}
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def values_args(name: str) -> list[str]:
    return VARIANTS[name]


# --- lint and schemas -----------------------------------------------------------------------


@pytest.mark.parametrize("variant", VALUES_FILES)
def test_helm_lint_strict(helm: str, variant: str) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART_DIR), *values_args(variant))
    assert result.returncode == 0, result.stdout + result.stderr


def test_values_schema_rejects_a_typo(helm: str) -> None:
    result = run_helm(
        helm, "template", RELEASE, str(CHART_DIR), "--set", "services.auth.replicas=3"
    )
    assert result.returncode != 0
    assert "replicas is not allowed" in result.stderr


def test_no_proxy_is_trusted_by_default_and_trust_all_is_refused(
    helm: str, renders: dict[str, Manifest]
) -> None:
    for name in SERVICES:
        data = named(renders["default"], "ConfigMap", component(name))["data"]
        assert data[f"{name.upper()}_TRUSTED_PROXIES"] == ""
        assert "FORWARDED_ALLOW_IPS" not in data
    ingress = render(helm, "--set-json", 'trustedProxies=["10.42.0.0/16"]')
    data = named(ingress, "ConfigMap", component("auth"))["data"]
    assert data["AUTH_TRUSTED_PROXIES"] == "10.42.0.0/16"
    for everyone in ("0.0.0.0/0", "::/0"):
        result = run_helm(
            helm,
            "template",
            RELEASE,
            str(CHART_DIR),
            "--set-json",
            f'trustedProxies=["{everyone}"]',
        )
        assert result.returncode != 0, f"{everyone} was accepted"


def check_custom_resource(doc: dict[str, Any], manifest: Manifest) -> None:
    """Structural checks of the custom resources against the objects they point at."""
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}, sorted(doc)
    assert len(doc["metadata"]["name"]) <= 63
    services = {s["metadata"]["name"]: s for s in of_kind(manifest, "Service")}
    kind = doc["kind"]
    if kind == "ServiceMonitor":
        selector = doc["spec"]["selector"]["matchLabels"]
        targets = [
            s for s in services.values() if selector.items() <= s["metadata"]["labels"].items()
        ]
        assert len(targets) == 1, f"{doc['metadata']['name']} selects {len(targets)} Services"
        ports = {p["name"] for p in targets[0]["spec"]["ports"]}
        for endpoint in doc["spec"]["endpoints"]:
            assert endpoint["port"] in ports
            assert endpoint["path"] == "/metrics"
            assert re.fullmatch(r"\d+[smh]", endpoint["interval"])
    elif kind == "PrometheusRule":
        groups = doc["spec"]["groups"]
        assert groups
        for group in groups:
            assert group["name"]
            for rule in group["rules"]:
                assert rule["expr"]
                if "record" in rule:
                    assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z_0-9]+", rule["record"])
                    continue
                assert rule["alert"]
                assert rule["labels"]["severity"] in {"critical", "warning", "info"}
                assert rule["annotations"]["runbook_url"].startswith("https://")
    elif kind == "HTTPRoute":
        assert doc["spec"]["parentRefs"] and all(ref["name"] for ref in doc["spec"]["parentRefs"])
        for rule in doc["spec"]["rules"]:
            assert all(m["path"]["type"] == "PathPrefix" for m in rule["matches"])
            for backend in rule["backendRefs"]:
                ports = {p["port"] for p in services[backend["name"]]["spec"]["ports"]}
                assert backend["port"] in ports
    else:  # pragma: no cover - CUSTOM_KINDS and this function must name the same kinds
        pytest.fail(f"no structural check for {kind}")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_rendered_objects_validate_strictly(
    renders: dict[str, Manifest], variant: str, version: str
) -> None:
    manifest = renders[variant]
    custom = 0
    for doc in manifest:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        assert DNS_1123_LABEL.match(doc["metadata"]["name"].replace(".", "-")), where
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            check_custom_resource(doc, manifest)
            custom += 1
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{where} is invalid for Kubernetes {version}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{where}: {exc.message}; add a structural check if it is a CRD")
    expected_custom = {"default": 0, "dev": 0, "prod": 4, "prod-gateway": 5}[variant]
    assert custom == expected_custom


def test_strict_validation_catches_an_unknown_field(renders: dict[str, Manifest]) -> None:
    deployment = copy.deepcopy(of_kind(renders["default"], "Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


# --- security and robustness of every pod ---------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_container_is_hardened(renders: dict[str, Manifest], variant: str) -> None:
    checked = 0
    for doc, spec in pod_specs(renders[variant]):
        pod_context = spec.get("securityContext", {})
        assert pod_context.get("seccompProfile", {}).get("type") == "RuntimeDefault", doc
        assert spec.get("automountServiceAccountToken") is False, doc["metadata"]["name"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{doc['kind']}/{doc['metadata']['name']}/{container['name']}"
            context = container.get("securityContext", {})
            run_as_non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
            assert run_as_non_root is True, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            resources = container.get("resources", {})
            assert resources.get("requests", {}).get("cpu"), where
            assert resources.get("requests", {}).get("memory"), where
            assert resources.get("limits", {}).get("memory"), where
            if doc["kind"] in {"Deployment", "StatefulSet"}:
                assert "livenessProbe" in container, where
                assert "readinessProbe" in container, where
            checked += 1
    # 3 services + 3 migrations + the helm test pod (+ postgres and redis in dev)
    assert checked == (9 if variant == "dev" else 7)


def service_pod(
    manifest: Manifest, name: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(Deployment, pod spec, its one container) of a service."""
    deployment = named(manifest, "Deployment", component(name))
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return deployment, spec, container


@pytest.mark.parametrize("variant", VALUES_FILES)
def test_service_pods_probe_drain_and_run_unprivileged(
    renders: dict[str, Manifest], variant: str
) -> None:
    manifest = renders[variant]
    for name in SERVICES:
        deployment, spec, container = service_pod(manifest, name)
        assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
        assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
        assert spec["securityContext"]["runAsUser"] == 10001
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/tmp", "/run/prometheus"} <= mounts  # noqa: S108 - the pod's emptyDir mounts
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert {"checksum/config", "checksum/secret"} <= set(annotations)
        assert spec["topologySpreadConstraints"]
        service_account = named(manifest, "ServiceAccount", spec["serviceAccountName"])
        assert service_account["automountServiceAccountToken"] is False


@pytest.mark.parametrize("variant", VALUES_FILES)
def test_grace_period_exceeds_prestop_plus_graceful_timeout(
    renders: dict[str, Manifest], variant: str
) -> None:
    manifest = renders[variant]
    for name in SERVICES:
        _, spec, container = service_pod(manifest, name)
        config = named(manifest, "ConfigMap", container["envFrom"][0]["configMapRef"]["name"])
        graceful = int(config["data"]["GUNICORN_GRACEFUL_TIMEOUT"])
        pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
        assert spec["terminationGracePeriodSeconds"] > graceful + pre_stop


def test_config_change_rolls_the_pods(helm: str, renders: dict[str, Manifest]) -> None:
    changed = render(helm, "--set", "jwt.issuer=https://elsewhere.example.com")
    for name in SERVICES:
        before = named(renders["default"], "Deployment", component(name))
        after = named(changed, "Deployment", component(name))
        key = "checksum/config"
        assert (
            before["spec"]["template"]["metadata"]["annotations"][key]
            != after["spec"]["template"]["metadata"]["annotations"][key]
        )


# --- wiring -----------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VALUES_FILES)
def test_ingress_routes_each_prefix_to_its_service(
    renders: dict[str, Manifest], variant: str
) -> None:
    manifest = renders[variant]
    (ingress,) = of_kind(manifest, "Ingress")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    routes = {}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["pathType"] == "Prefix"
            backend = path["backend"]["service"]
            service = named(manifest, "Service", backend["name"])
            assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
            routes[path["path"]] = backend["name"]
    assert routes == {f"/api/v1/{name}": component(name) for name in SERVICES}
    if variant == "prod":
        assert ingress["spec"]["tls"][0]["hosts"] == ["identity.example.com"]


def test_httproute_routes_each_prefix_to_its_service(renders: dict[str, Manifest]) -> None:
    (route,) = of_kind(renders["prod-gateway"], "HTTPRoute")
    routes = {
        rule["matches"][0]["path"]["value"]: rule["backendRefs"][0]["name"]
        for rule in route["spec"]["rules"]
    }
    assert routes == {f"/api/v1/{name}": component(name) for name in SERVICES}
    assert not of_kind(renders["prod"], "HTTPRoute")


def test_services_find_each_other(renders: dict[str, Manifest]) -> None:
    manifest = renders["default"]
    data = {name: named(manifest, "ConfigMap", component(name))["data"] for name in SERVICES}
    jwks = f"http://{component('auth')}/api/v1/auth/jwks.json"
    assert data["users"]["USERS_JWKS_URL"] == jwks
    assert data["orgs"]["ORGS_JWKS_URL"] == jwks
    assert data["users"]["USERS_ORGS_URL"] == f"http://{component('orgs')}"
    assert data["orgs"]["ORGS_USERS_URL"] == f"http://{component('users')}"
    assert data["auth"]["AUTH_USERS_URL"] == f"http://{component('users')}"
    assert data["auth"]["AUTH_ORGS_URL"] == f"http://{component('orgs')}"  # org-scoped tokens
    issuers = {data[name][f"{name.upper()}_JWT_ISSUER"] for name in SERVICES}
    audiences = {data[name][f"{name.upper()}_JWT_AUDIENCE"] for name in SERVICES}
    assert len(issuers) == 1 and len(audiences) == 1
    for name in SERVICES:
        assert data[name]["PROMETHEUS_MULTIPROC_DIR"] == "/run/prometheus"
        assert data[name]["OTEL_SERVICE_NAME"] == name
        # Anything a service writes goes to the writable /tmp mount, not the read-only root.
        assert data[name][f"{name.upper()}_DATA_DIR"].startswith("/tmp/")  # noqa: S108
    auth = named(manifest, "Deployment", component("auth"))["spec"]["template"]["spec"]
    mount = next(m for m in auth["containers"][0]["volumeMounts"] if m["name"] == "signing-keys")
    assert mount["mountPath"] == data["auth"]["AUTH_SIGNING_KEYS_DIR"]


@pytest.mark.parametrize("variant", ["default", "prod"])
def test_network_policy_admits_ingress_controller_platform_and_monitoring(
    renders: dict[str, Manifest], variant: str
) -> None:
    manifest = renders[variant]
    for name in SERVICES:
        policy = named(manifest, "NetworkPolicy", component(name))
        pods = named(manifest, "Deployment", component(name))["spec"]["template"]["metadata"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= pods["labels"].items()
        peers = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
        namespaces = [
            p["namespaceSelector"]["matchLabels"] for p in peers if "namespaceSelector" in p
        ]
        assert {"kubernetes.io/metadata.name": "ingress-nginx"} in namespaces
        assert {"kubernetes.io/metadata.name": "monitoring"} in namespaces
        own = [p for p in peers if set(p) == {"podSelector"}]
        assert own and own[0]["podSelector"]["matchLabels"] == {
            "app.kubernetes.io/name": "identity-platform",
            "app.kubernetes.io/instance": RELEASE,
        }


# --- migrations -------------------------------------------------------------------------------


def job_env_sources(job: dict[str, Any]) -> tuple[str, set[str]]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    config = container["envFrom"][0]["configMapRef"]["name"]
    secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"]}
    return config, secrets


@pytest.mark.parametrize("variant", ["default", "prod"])
def test_migration_jobs_are_pre_install_hooks_with_their_own_config(
    renders: dict[str, Manifest], variant: str
) -> None:
    manifest = renders[variant]
    jobs = of_kind(manifest, "Job")
    assert len(jobs) == len(SERVICES)
    for name in SERVICES:
        job = named(manifest, "Job", f"{component(name)}-migrate")
        annotations = job["metadata"]["annotations"]
        assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
        assert job["spec"]["template"]["spec"]["containers"][0]["command"] == [f"{name}-migrate"]
        # At pre-install time only hooks (and pre-existing Secrets) exist.
        config_name, secret_names = job_env_sources(job)
        config = named(manifest, "ConfigMap", config_name)
        weight = int(annotations["helm.sh/hook-weight"])
        assert int(config["metadata"]["annotations"]["helm.sh/hook-weight"]) < weight
        for secret_name in secret_names:
            rendered = [
                s for s in of_kind(manifest, "Secret") if s["metadata"]["name"] == secret_name
            ]
            if variant == "prod":
                assert not rendered and secret_name == f"identity-{name}"  # existingSecret
            else:
                (secret,) = rendered
                hook_weight = int(secret["metadata"]["annotations"]["helm.sh/hook-weight"])
                assert hook_weight < weight


def test_migration_jobs_are_plain_jobs_in_development(renders: dict[str, Manifest]) -> None:
    manifest = renders["dev"]
    for name in SERVICES:
        job = named(manifest, "Job", f"{component(name)}-migrate-1")
        assert not any(k.startswith("helm.sh/") for k in job["metadata"].get("annotations", {}))
        config_name, secret_names = job_env_sources(job)
        assert config_name == component(name)
        assert secret_names == {component(name)}
        named(manifest, "Secret", component(name))
    hooks = [d for d in manifest if "helm.sh/hook" in d["metadata"].get("annotations", {})]
    assert [d["kind"] for d in hooks] == ["Pod"]  # only the helm test


# --- replicas, secrets, switches ------------------------------------------------------------


@pytest.mark.parametrize("variant", VALUES_FILES)
def test_hpa_owns_the_replica_count(renders: dict[str, Manifest], variant: str) -> None:
    manifest = renders[variant]
    scaled = {
        hpa["spec"]["scaleTargetRef"]["name"]
        for hpa in of_kind(manifest, "HorizontalPodAutoscaler")
    }
    for name in SERVICES:
        deployment = named(manifest, "Deployment", component(name))
        if deployment["metadata"]["name"] in scaled:
            assert "replicas" not in deployment["spec"]
        else:
            assert deployment["spec"]["replicas"] >= 1
    assert len(scaled) == (0 if variant == "dev" else 3)


def secret_values(manifest: Manifest) -> set[str]:
    values = set()
    for secret in of_kind(manifest, "Secret"):
        for value in secret.get("data", {}).values():
            values.add(base64.b64decode(value).decode())
        values.update(secret.get("stringData", {}).values())
    return {v for v in values if len(v) >= 8}


def test_secret_values_never_appear_in_plain_text(helm: str, renders: dict[str, Manifest]) -> None:
    with_values = render(
        helm,
        "--set", "services.auth.secrets.databaseUrl=postgresql+asyncpg://auth:pw-auth-1@db/auth",
        "--set", "services.auth.secrets.redisUrl=redis://:pw-redis-1@redis:6379/0",
        "--set", "services.auth.secrets.platformAdminPassword=admin-pw-123",
        "--set-json",
        "services.auth.secrets.serviceClients=" + json.dumps(json.dumps({"svc": "client-secret-1"})),
        "--set", "services.users.secrets.databaseUrl=postgresql+asyncpg://users:pw-users-1@db/u",
        "--set", "services.users.secrets.redisUrl=redis://:pw-redis-2@redis:6379/0",
    )  # fmt: skip
    for manifest in (with_values, renders["dev"]):
        secrets = secret_values(manifest)
        assert len(secrets) >= 5
        plain: list[str] = []
        for config in of_kind(manifest, "ConfigMap"):
            plain.extend(str(v) for v in config.get("data", {}).values())
        for _, spec in pod_specs(manifest):
            for container in spec.get("initContainers", []) + spec["containers"]:
                plain.extend(str(e["value"]) for e in container.get("env", []) if "value" in e)
                plain.extend(container.get("command", []) + container.get("args", []))
                for env in container.get("env", []):
                    if re.search(r"DATABASE_URL|REDIS_URL|PASSWORD|CLIENTS", env["name"]):
                        assert "secretKeyRef" in env.get("valueFrom", {}), env["name"]
        text = json.dumps(plain)
        leaked = [s for s in secrets if s in text or json.dumps(s)[1:-1] in text]
        assert not leaked


def test_existing_secret_replaces_the_rendered_secret(
    helm: str, renders: dict[str, Manifest]
) -> None:
    assert not of_kind(renders["prod"], "Secret")
    for name in SERVICES:
        spec = named(renders["prod"], "Deployment", component(name))["spec"]["template"]["spec"]
        refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in spec["containers"][0]["env"]}
        assert refs == {f"identity-{name}"}
    only_auth = render(helm, "--set", "services.auth.existingSecret=my-auth")
    secret_names = {s["metadata"]["name"] for s in of_kind(only_auth, "Secret")}
    assert component("auth") not in secret_names
    assert f"{component('auth')}-migrate" not in secret_names
    assert {component("users"), component("orgs")} <= secret_names
    auth = named(only_auth, "Deployment", component("auth"))["spec"]["template"]["spec"]
    volume = next(v for v in auth["volumes"] if v["name"] == "signing-keys")
    assert volume["secret"]["secretName"] == "my-auth"


def test_development_secrets_point_at_the_dev_databases(renders: dict[str, Manifest]) -> None:
    manifest = renders["dev"]
    named(manifest, "StatefulSet", component("postgres"))
    named(manifest, "Deployment", component("redis"))
    init = named(manifest, "ConfigMap", f"{component('postgres')}-init")
    assert "for db in auth orgs users" in next(iter(init["data"].values()))
    for name in SERVICES:
        data = named(manifest, "Secret", component(name))["data"]
        url = base64.b64decode(data["database-url"]).decode()
        assert url.startswith(f"postgresql+asyncpg://{name}:")
        assert url.endswith(f"@{component('postgres')}:5432/{name}")
        redis = base64.b64decode(data["redis-url"]).decode()
        assert redis.endswith(f"@{component('redis')}:6379/0")
    pem = base64.b64decode(named(manifest, "Secret", component("auth"))["data"]["current.pem"])
    assert pem.startswith(b"-----BEGIN EC PRIVATE KEY-----")


@pytest.mark.parametrize(
    ("switch", "kind", "count"),
    [
        ("metrics.serviceMonitor.enabled", "ServiceMonitor", 3),
        ("metrics.prometheusRule.enabled", "PrometheusRule", 1),
        ("grafana.dashboards.enabled", "ConfigMap", len(list((CHART_DIR / "files" / "dashboards").glob("*.json")))),
        ("httpRoute.enabled", "HTTPRoute", 1),
    ],
)  # fmt: skip
def test_monitoring_objects_appear_only_when_switched_on(
    helm: str, renders: dict[str, Manifest], switch: str, kind: str, count: int
) -> None:
    def selected(manifest: Manifest) -> list[dict[str, Any]]:
        objects = of_kind(manifest, kind)
        if kind == "ConfigMap":
            return [o for o in objects if o["metadata"]["labels"].get("grafana_dashboard") == "1"]
        return objects

    assert count >= 1
    assert selected(renders["default"]) == []
    assert selected(renders["dev"]) == []
    on = render(helm, "--set", f"{switch}=true")
    assert len(selected(on)) == count
    others = {"ServiceMonitor", "PrometheusRule", "HTTPRoute"} - {kind}
    assert not [o for o in on if o["kind"] in others]


def test_prometheus_rule_is_the_alerts_file_and_the_slo_rules(
    renders: dict[str, Manifest],
) -> None:
    (rule,) = of_kind(renders["prod"], "PrometheusRule")
    groups = yaml.safe_load((CHART_DIR / "files" / "alerts.yaml").read_text())["groups"]
    rendered = rule["spec"]["groups"]
    # The file's groups as they are, but for the runbook link each alert gets.
    for group in rendered[: len(groups)]:
        for item in group["rules"]:
            item["annotations"].pop("runbook_url")
    assert rendered[: len(groups)] == groups
    assert [g["name"] for g in rendered[len(groups) :]] == ["identity-platform.slo"]


def test_helm_test_pod_checks_every_service(renders: dict[str, Manifest]) -> None:
    (pod,) = of_kind(renders["default"], "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    urls = next(e["value"] for e in container["env"] if e["name"] == "READYZ_URLS").split()
    assert urls == [f"http://{component(name)}/readyz" for name in sorted(SERVICES)]
    assert (
        container["image"]
        == named(renders["default"], "Deployment", component("auth"))["spec"]["template"]["spec"][
            "containers"
        ][0]["image"]
    )
