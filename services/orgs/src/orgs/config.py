"""The orgs service's settings, read once from `ORGS_*` environment variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from platform_common.mail import MailSettings
from platform_common.settings import ServiceSettings


class OrgsSettings(ServiceSettings, MailSettings):
    model_config = SettingsConfigDict(env_prefix="ORGS_", extra="ignore", frozen=True)

    service_name: str = "orgs"

    # The users service: names and emails of members, and whether a user id exists.
    users_url: str = "http://127.0.0.1:8002"

    invitation_ttl_days: int = Field(default=7, ge=1, le=90)
    # The invitee is mailed ORGS_MAIL_LINK_BASE_URL + this path + ?token=<invitation token>.
    invitation_accept_path: str = "/accept-invitation"

    # The live socket (orgs.live_api): how long a browser has to send its {"token": ...},
    # how often the token is checked again (expiry, revocation) and the membership (a
    # fallback for a missed member.removed event), and how many events may wait for a
    # client before it is dropped as too slow.
    live_auth_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    live_token_check_seconds: float = Field(default=1.0, gt=0, le=5)
    live_membership_check_seconds: float = Field(default=5.0, gt=0, le=300)
    live_send_queue: int = Field(default=256, ge=1, le=100_000)

    # Webhooks (orgs.webhooks). Destinations resolving to private, loopback, link-local or
    # reserved addresses are refused unless allowed; unset: allowed in development only.
    webhooks_allow_private: bool | None = None
    webhooks_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # Retries with exponential back-off (base * 2^n, capped, with jitter) for this long;
    # then the delivery is given up and the endpoint disabled (a webhook.disabled event).
    webhooks_retry_period_seconds: float = Field(default=86_400, gt=0)
    webhooks_backoff_base_seconds: float = Field(default=5.0, gt=0)
    webhooks_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    # A delivery worker's stream entries left unacknowledged this long are taken over.
    webhooks_claim_idle_seconds: float = Field(default=30.0, gt=0)
    webhooks_poll_seconds: float = Field(default=1.0, gt=0)
    webhooks_concurrency: int = Field(default=8, ge=1, le=100)
    webhooks_worker_enabled: bool = True

    @property
    def webhooks_private_allowed(self) -> bool:
        if self.webhooks_allow_private is None:
            return self.environment == "development"
        return self.webhooks_allow_private


@lru_cache
def get_settings() -> OrgsSettings:
    return OrgsSettings()
