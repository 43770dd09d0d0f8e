"""Settings shared by every service.

Each service declares one subclass of `ServiceSettings` with its own environment prefix
(`AUTH_`, `USERS_`, `ORGS_`) and reads it once at start-up; nothing else in the code base
reads `os.environ`. Reading settings has no side effects: a service is given its database and
Redis URLs (`make up` starts an embedded PostgreSQL and Redis and passes theirs; a deployment
passes its own) and refuses to start without them, naming the variable it lacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, IPvAnyNetwork, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Environment = Literal["development", "test", "production"]


class ConfigurationError(RuntimeError):
    """The service cannot start with the settings it was given."""


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses set `model_config` with their env prefix."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    service_name: str = "service"
    environment: Environment = "development"
    data_dir: Path = Path(".data")

    # PostgreSQL through asyncpg: postgresql+asyncpg://user:password@host:port/database
    # (or ...@/database?host=/socket/dir for a Unix socket, as `make up` does).
    database_url: str | None = None
    # A fixed pool per worker: overflow connections are opened and closed under load, and
    # that churn (TCP, TLS attempt, startup) cost more than the queries. A request that
    # cannot get a connection within the timeout answers 503 with Retry-After: 4 s, so that
    # under overload requests queue rather than fail, and still answer before the 5 s that
    # clients and the ingress wait.
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=0, ge=0, le=200)
    db_pool_timeout_seconds: float = Field(default=4.0, gt=0)
    db_statement_timeout_ms: int = Field(default=5000, ge=0)

    # redis://host:port/db, rediss:// for TLS, or unix:///path/to/socket.
    redis_url: str | None = None
    redis_timeout_seconds: float = Field(default=1.0, gt=0)

    # Access-token verification (every service verifies locally from the JWKS).
    jwt_issuer: str = "http://127.0.0.1:8001/api/v1/auth"
    jwt_audience: str = "identity-platform"
    jwt_algorithms: list[str] = ["ES256"]
    jwks_url: str = "http://127.0.0.1:8001/api/v1/auth/jwks.json"
    jwks_cache_seconds: float = Field(default=300.0, ge=0)
    jwks_min_refresh_interval_seconds: float = Field(default=1.0, ge=0)
    # Clock skew tolerated on exp, nbf and iat.
    jwt_leeway_seconds: int = Field(default=5, ge=0, le=300)
    revocation_cache_seconds: float = Field(default=1.0, ge=0, le=4)
    # How long a personal access token's verdict from auth is kept (platform_common.
    # verification): a deleted PAT fails everywhere within this, hence at most 5.
    pat_cache_seconds: float = Field(default=4.0, ge=0, le=5)

    # Calls to the other services.
    http_timeout_seconds: float = Field(default=2.0, gt=0)

    # Every request (but the probes and /metrics) that has not begun its answer by then gets
    # a 503 `request_timeout` with Retry-After: 1 (platform_common.deadline), so a hung
    # dependency is an answer before the clients and the ingress give up. Also bounds
    # asyncpg's connect and command timeouts (db.py). 0 disables.
    request_timeout_seconds: float = Field(default=5.0, ge=0)
    # Requests one worker works on at once; more wait their turn in arrival order (their wait
    # counts toward the deadline). A bounded set keeps the event loop responsive and stops
    # requests overtaking each other at the database pool, where the unlucky ones starved
    # into 503s under overload. Sized against db_pool_size: the extra requests are those
    # between their queries. 0 admits everything at once.
    max_requests_in_flight: int = Field(default=32, ge=0, le=10_000)

    # Proxies whose X-Forwarded-For is believed (CIDRs, comma-separated): the ingress
    # controller's pods, say. Default none: the socket peer is the client.
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = []
    # Browser origins allowed to call the API (comma-separated; "*" for any, never with
    # credentials). Empty: no cross-origin access.
    cors_origins: Annotated[list[str], NoDecode] = []

    # Per-caller limits on every API endpoint, per role, in `limits`' notation ("N/minute";
    # platform_common.rate_limit). A caller without a valid token counts by client address.
    rate_limit_enabled: bool = True
    rate_limit_anonymous: str = "300/minute"
    rate_limit_user: str = "1200/minute"
    rate_limit_admin: str = "3000/minute"
    rate_limit_service: str = "30000/minute"

    # Events (platform_common.events): the relay's stream cap (XADD MAXLEN ~), its polling
    # fallback, and how long events stay in the audit log before the purge removes them.
    events_stream_maxlen: int = Field(default=100_000, ge=100)
    events_poll_seconds: float = Field(default=1.0, gt=0)
    events_retention_days: float = Field(default=90, gt=0)
    events_purge_interval_seconds: float = Field(default=3600, gt=0)
    events_relay_enabled: bool = True

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    log_level: str = "INFO"
    # "json": one JSON object per line (level, service, request id, trace and span ids),
    # for log collectors; "text": readable lines. Unset: json in production, else text.
    log_format: Literal["text", "json"] | None = None

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

    @field_validator("trusted_proxies", "cors_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator(
        "rate_limit_anonymous", "rate_limit_user", "rate_limit_admin", "rate_limit_service"
    )
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit like '600/minute': {value!r}") from exc
        return value

    def rate_limits(self) -> dict[str, str]:
        return {
            "anonymous": self.rate_limit_anonymous,
            "user": self.rate_limit_user,
            "admin": self.rate_limit_admin,
            "service": self.rate_limit_service,
        }

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

    def env_name(self, field: str) -> str:
        """The environment variable a field is read from (`AUTH_DATABASE_URL`)."""
        prefix = str(self.model_config.get("env_prefix") or "")
        return f"{prefix}{field}".upper()

    def _required(self, field: str, started_by_make_up: str) -> str:
        value: str | None = getattr(self, field)
        if value:
            return value
        raise ConfigurationError(
            f"{self.service_name}: {self.env_name(field)} is not set "
            f"(`make up` starts {started_by_make_up} and sets it)"
        )

    def resolved_database_url(self) -> str:
        """The database URL; a clear error when it is missing (nothing is started here)."""
        return self._required("database_url", "an embedded PostgreSQL")

    def resolved_redis_url(self) -> str:
        """The Redis URL; a clear error when it is missing (nothing is started here)."""
        return self._required("redis_url", "an embedded Redis")
