"""Tokens as auth mints them, with a key of the tests' own, and the callers who carry them."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwk, jwt


class TokenFactory:
    """Mints access tokens the way auth does, with a key of its own, for services' tests.

    `jwks()` is what auth would publish; serve it to the app under test through an
    `httpx.MockTransport`.
    """

    def __init__(self, issuer: str, audience: str, kid: str | None = None) -> None:
        self.issuer = issuer
        self.audience = audience
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.private_pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self.kid = kid or uuid.uuid4().hex
        public_pem = (
            self.private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        self.public_jwk = jwk.construct(public_pem, "ES256").to_dict()
        self.public_jwk.update({"kid": self.kid, "use": "sig", "alg": "ES256"})

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}

    def mint(
        self,
        *,
        sub: str | None = None,
        role: str = "user",
        sid: str | None = None,
        email: str | None = None,
        name: str | None = None,
        ttl: timedelta = timedelta(minutes=15),
        **extra: Any,
    ) -> str:
        now = datetime.now(UTC)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub or str(uuid.uuid4()),
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            "jti": uuid.uuid4().hex,
            "role": role,
        }
        if not claims["sub"].startswith("svc:") and "pat_id" not in extra:
            claims["sid"] = sid or str(uuid.uuid4())
        if email:
            claims["email"] = email
        if name:
            claims["name"] = name
        claims.update(extra)
        return str(
            jwt.encode(claims, self.private_pem, algorithm="ES256", headers={"kid": self.kid})
        )


class FakePatExchange:
    """auth's personal-access-token exchange (platform_common.pat_exchange) as a service
    under test sees it: the PATs it knows, each answered with a stand-in token minted by
    `tokens`; unknown or deleted ones with 401. Serve it as the app's "auth" transport."""

    def __init__(self, tokens: TokenFactory) -> None:
        self.tokens = tokens
        self.known: dict[str, dict[str, Any]] = {}
        self.exchanges = 0
        self.down = False  # auth unreachable
        self.delay = 0.0  # seconds auth takes to answer

    def issue(self, caller: Caller, scopes: list[str], *, role: str = "user") -> str:
        token = "ipt_" + secrets.token_urlsafe(32)
        self.known[token] = {
            "sub": str(caller.id),
            "role": role,
            "email": caller.email,
            "name": caller.name,
            "scope": " ".join(sorted(scopes)),
            "pat_id": str(uuid.uuid4()),
        }
        return token

    def delete(self, token: str) -> None:
        self.known.pop(token, None)

    async def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/internal/v1/auth/personal-tokens/exchange":
            return httpx.Response(404)
        self.exchanges += 1
        await asyncio.sleep(self.delay)
        if self.down:
            raise httpx.ConnectError("auth is down", request=request)
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        claims = self.known.get(token)
        if claims is None:
            return httpx.Response(401, json={"code": "invalid_token"})
        stand_in = self.tokens.mint(ttl=timedelta(seconds=60), **claims)
        return httpx.Response(200, json={"access_token": stand_in, "expires_in": 60})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


def jwks_transport(tokens: TokenFactory) -> httpx.MockTransport:
    """auth's JWKS endpoint as the app under test sees it, publishing `tokens`' key."""
    return httpx.MockTransport(lambda request: httpx.Response(200, json=tokens.jwks()))


# The auth the services under test trust: tokens from a `TokenFactory(TEST_ISSUER,
# TEST_AUDIENCE)`, whose JWKS `jwks_transport` serves at TEST_JWKS_URL.
TEST_ISSUER = "http://auth.test/api/v1/auth"


TEST_AUDIENCE = "identity-platform"


TEST_JWKS_URL = "http://auth.test/jwks.json"


def verifying_settings(database_url: str, redis_url: str, **extra: Any) -> dict[str, Any]:
    """Settings of a service under test that trusts the test issuer's tokens."""
    return {
        "environment": "test",
        "database_url": database_url,
        "redis_url": redis_url,
        "jwt_issuer": TEST_ISSUER,
        "jwt_audience": TEST_AUDIENCE,
        "jwks_url": TEST_JWKS_URL,
        **extra,
    }


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for an access token."""
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Caller:
    """Somebody calling a service: who, and the access token that says so."""

    id: uuid.UUID
    token: str
    email: str = ""
    name: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)
