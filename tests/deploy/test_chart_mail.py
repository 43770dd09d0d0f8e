"""The chart's mail settings: SMTP in the ConfigMaps of auth and orgs, the password only
through the Secret (or an existingSecret's `smtp-password`)."""

from __future__ import annotations

import base64

from .conftest import component, named, of_kind, render


def _env(manifest: list[dict], name: str) -> dict[str, dict]:  # type: ignore[type-arg]
    spec = named(manifest, "Deployment", component(name))["spec"]["template"]["spec"]
    return {e["name"]: e for e in spec["containers"][0]["env"]}


def test_smtp_settings_reach_auth_and_orgs_and_the_password_stays_secret(helm: str) -> None:
    manifest = render(
        helm,
        "--set", "mail.smtp.host=smtp.example.com",
        "--set", "mail.smtp.port=465",
        "--set", "mail.smtp.tlsMode=tls",
        "--set", "mail.smtp.username=mailer@example.com",
        "--set", "mail.smtp.password=smtp-pw-123",
        "--set", "mail.linkBaseUrl=https://app.example.com",
    )  # fmt: skip
    for name in ("auth", "orgs"):
        prefix = name.upper()
        config = named(manifest, "ConfigMap", component(name))["data"]
        assert config[f"{prefix}_SMTP_URL"] == "smtps://mailer%40example.com@smtp.example.com:465"
        assert config[f"{prefix}_SMTP_TLS"] == "tls"
        assert config[f"{prefix}_MAIL_LINK_BASE_URL"] == "https://app.example.com"
        assert "smtp-pw-123" not in str(config)
        ref = _env(manifest, name)[f"{prefix}_SMTP_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == (component(name), "smtp-password")
        secret = named(manifest, "Secret", component(name))["data"]
        assert base64.b64decode(secret["smtp-password"]).decode() == "smtp-pw-123"
    users = named(manifest, "ConfigMap", component("users"))["data"]
    assert not any("SMTP" in key for key in users)


def test_without_a_host_no_smtp_url_and_an_existing_secret_holds_the_password(
    helm: str,
) -> None:
    manifest = render(helm, "--set", "services.orgs.existingSecret=my-orgs")
    config = named(manifest, "ConfigMap", component("orgs"))["data"]
    assert "ORGS_SMTP_URL" not in config
    ref = _env(manifest, "orgs")["ORGS_SMTP_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"], ref["optional"]) == ("my-orgs", "smtp-password", True)
    assert component("orgs") not in {s["metadata"]["name"] for s in of_kind(manifest, "Secret")}
