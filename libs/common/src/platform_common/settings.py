"""Settings shared by every service.

Each service declares one subclass of `ServiceSettings` with its own environment prefix
(`AUTH_`, `USERS_`, `ORGS_`) and reads it once at start-up; nothing else in the code base
reads `os.environ`. Defaults are the embedded development set-up (a SQLite file and an
embedded Redis under `data_dir`), so a fresh clone runs with no server. `environment=production`
turns those conveniences off: there every URL must be given explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]


class ConfigurationError(RuntimeError):
    """The service cannot start with the settings it was given."""


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses set `model_config` with their env prefix."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    service_name: str = "service"
    environment: Environment = "development"
    data_dir: Path = Path(".data")

    # Database: SQLite under data_dir in development, PostgreSQL (asyncpg) in production.
    database_url: str | None = None
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    db_statement_timeout_ms: int = Field(default=5000, ge=0)

    # Redis: an embedded server under data_dir in development when unset.
    redis_url: str | None = None
    redis_timeout_seconds: float = Field(default=1.0, gt=0)

    # Access-token verification (every service verifies locally from the JWKS).
    jwt_issuer: str = "http://127.0.0.1:8001/api/v1/auth"
    jwt_audience: str = "identity-platform"
    jwt_algorithms: list[str] = ["ES256"]
    jwks_url: str = "http://127.0.0.1:8001/api/v1/auth/jwks.json"
    jwks_cache_seconds: float = Field(default=300.0, ge=0)
    jwks_min_refresh_interval_seconds: float = Field(default=1.0, ge=0)
    revocation_cache_seconds: float = Field(default=1.0, ge=0, le=4)

    # Calls to the other services.
    http_timeout_seconds: float = Field(default=2.0, gt=0)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    log_level: str = "INFO"

    # Standard names, read without the service prefix.
    otel_sdk_disabled: bool = Field(default=False, validation_alias="OTEL_SDK_DISABLED")
    otel_service_name: str | None = Field(default=None, validation_alias="OTEL_SERVICE_NAME")
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    prometheus_multiproc_dir: str | None = Field(
        default=None, validation_alias="PROMETHEUS_MULTIPROC_DIR"
    )

    @model_validator(mode="after")
    def _check_algorithms(self) -> ServiceSettings:
        allowed = {"ES256", "ES384", "RS256", "RS384", "RS512", "PS256"}
        bad = [alg for alg in self.jwt_algorithms if alg not in allowed]
        if bad or not self.jwt_algorithms:
            raise ValueError(f"jwt_algorithms must be asymmetric algorithms, got {bad or 'none'}")
        return self

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file under data_dir outside production."""
        if self.database_url:
            return self.database_url
        if self.is_production:
            raise ConfigurationError(f"{self.service_name}: DATABASE_URL is required in production")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{self.service_name}.db').resolve()}"

    def resolved_redis_url(self) -> str:
        """The Redis URL, starting (or joining) the embedded server outside production."""
        if self.redis_url:
            return self.redis_url
        if self.is_production:
            raise ConfigurationError(f"{self.service_name}: REDIS_URL is required in production")
        from platform_common.embedded_redis import ensure_embedded_redis

        return ensure_embedded_redis(self.data_dir)
