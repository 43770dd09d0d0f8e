"""The users service's settings, read once from `USERS_*` environment variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import SettingsConfigDict

from platform_common.settings import ServiceSettings


class UsersSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="USERS_", extra="ignore", frozen=True)

    service_name: str = "users"

    # Where `GET /me` fetches the caller's organizations.
    orgs_url: str = "http://127.0.0.1:8003"


@lru_cache
def get_settings() -> UsersSettings:
    return UsersSettings()
