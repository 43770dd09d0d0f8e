"""The auth service's settings, read once from `AUTH_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from platform_common.mail import MailSettings
from platform_common.revocation import ORG_TOKEN_MAX_LIFETIME_SECONDS
from platform_common.settings import ServiceSettings


class ServiceClient(BaseModel):
    """An OAuth2 client-credentials client: another service calling with its own identity."""

    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[str] = []


class AuthSettings(ServiceSettings, MailSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore", frozen=True)

    service_name: str = "auth"

    # Signing keys: `current.pem` signs, every other *.pem in the folder is still published
    # in the JWKS so that tokens signed before a rotation stay valid until they expire.
    signing_keys_dir: Path | None = None
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86_400, ge=3600)
    # A refresh token presented again this soon after its rotation (two tabs refreshing at
    # once) gets a new pair for the same session instead of counting as reuse; later reuse
    # still ends the session. 0 turns the grace off.
    refresh_reuse_interval_seconds: float = Field(default=5.0, ge=0, le=60)
    service_token_ttl_seconds: int = Field(default=900, ge=60, le=86_400)
    # Org-scoped access tokens (POST /org-token): short-lived; a role change or removal
    # revokes them within seconds anyway (platform_common.revocation).
    org_token_ttl_seconds: int = Field(default=300, ge=30, le=ORG_TOKEN_MAX_LIFETIME_SECONDS)

    # Argon2id cost (OWASP's second recommended profile by default; tests lower it).
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=19_456, ge=8)
    argon2_parallelism: int = Field(default=1, ge=1)

    # Login throttling (auth.throttle): per account, free attempts then progressive delays
    # (1 s, 2 s, ... up to the maximum) in separate pools for trusted devices, known addresses
    # and everyone else; a pool is forgotten after the window without attempts. Per client
    # address, attempts in a window.
    login_max_failures_per_account: int = Field(default=5, ge=1)
    login_account_window_seconds: int = Field(default=900, ge=1)
    login_max_delay_seconds: int = Field(default=120, ge=1)
    login_device_token_days: int = Field(default=90, ge=1)
    login_known_address_days: int = Field(default=30, ge=0)
    login_max_attempts_per_ip: int = Field(default=30, ge=1)
    login_ip_window_seconds: int = Field(default=60, ge=1)

    # OAuth2 client-credentials clients, as JSON: {"name": {"secret_sha256": ..., "scopes": []}}
    service_clients: dict[str, ServiceClient] = {}

    # Where auth delivers user events (the users service).
    users_url: str = "http://127.0.0.1:8002"
    # Where auth reads memberships for org-scoped tokens (the orgs service).
    orgs_url: str = "http://127.0.0.1:8003"
    outbox_poll_seconds: float = Field(default=1.0, gt=0)

    # Account lifecycle by mail (auth.service.account_mail): token lifetimes, the paths of
    # the links (under AUTH_MAIL_LINK_BASE_URL), login only once verified, new-sign-in notices.
    verify_email_token_ttl_seconds: int = Field(default=48 * 3600, ge=60)
    password_reset_token_ttl_seconds: int = Field(default=30 * 60, ge=60)
    email_change_token_ttl_seconds: int = Field(default=3600, ge=60)
    verify_email_path: str = "/verify-email"
    password_reset_path: str = "/reset-password"  # noqa: S105 - a path
    email_change_path: str = "/confirm-email-change"
    require_verified_email: bool = False
    new_sign_in_notice: bool = False
    # password/forgot: per address and per client address, in a window; and the least time
    # an answer takes, so that a known and an unknown address cannot be told apart by timing.
    password_forgot_max_per_email: int = Field(default=5, ge=1)
    password_forgot_max_per_ip: int = Field(default=20, ge=1)
    password_forgot_window_seconds: int = Field(default=3600, ge=1)
    password_forgot_min_seconds: float = Field(default=0.25, ge=0, le=5)

    # Seeded by `auth-migrate` (standard names, no prefix).
    platform_admin_email: str | None = Field(default=None, validation_alias="PLATFORM_ADMIN_EMAIL")
    platform_admin_password: SecretStr | None = Field(
        default=None, validation_alias="PLATFORM_ADMIN_PASSWORD"
    )

    def resolved_signing_keys_dir(self) -> Path:
        if self.signing_keys_dir is not None:
            return self.signing_keys_dir
        return self.data_dir / "auth-keys"


@lru_cache
def get_settings() -> AuthSettings:
    return AuthSettings()
