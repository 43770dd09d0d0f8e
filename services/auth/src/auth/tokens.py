"""Minting access tokens (JWTs). Refresh tokens are opaque: `platform_common.opaque_tokens`."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jose import jwk
from jose.backends.base import Key

from auth.keys import KeyRing, SigningKey
from platform_common.permissions import permissions_for

SERVICE_SUBJECT_PREFIX = "svc:"


@dataclass(frozen=True)
class OrgClaims:
    """What an org-scoped token says of the membership, and when (Redis' clock, ms) auth
    began reading it: orgs' revocation markers are compared with that time."""

    org_id: uuid.UUID
    slug: str
    role: str
    checked_at_ms: int


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class _Signer:
    """What `jose.jwt.encode(claims, private_pem, algorithm, headers={"kid": ...})` does for
    every token, with the per-key work done once: the key parsed from its PEM (jose's key
    object, which signs exactly as `jwt.encode` does) and the encoded header, byte for byte
    jose's (`{"alg","kid","typ":"JWT"}`, sorted, compact). The payload is jose's too: the
    claims as compact JSON, in their order."""

    def __init__(self, key: SigningKey) -> None:
        self.kid = key.kid
        self.key: Key = jwk.construct(key.private_pem, key.algorithm)
        header = {"typ": "JWT", "alg": key.algorithm, "kid": key.kid}
        self.header = _b64url(json.dumps(header, separators=(",", ":"), sort_keys=True).encode())

    def sign(self, claims: dict[str, Any]) -> str:
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = self.header + b"." + payload
        return (signing_input + b"." + _b64url(self.key.sign(signing_input))).decode()


class TokenIssuer:
    def __init__(self, keys: KeyRing, *, issuer: str, audience: str) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self._signer: _Signer | None = None

    def _sign(self, claims: dict[str, Any]) -> str:
        signer = self._signer
        if signer is None or signer.kid != self.keys.current.kid:
            signer = self._signer = _Signer(self.keys.current)
        return signer.sign(claims)

    def _base_claims(self, subject: str, now: datetime, ttl: timedelta) -> dict[str, Any]:
        return {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            "jti": uuid.uuid4().hex,
        }

    def user_token(
        self,
        *,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        role: str,
        email: str,
        name: str,
        now: datetime,
        ttl: timedelta,
        org: OrgClaims | None = None,
        email_verified: bool | None = None,
    ) -> str:
        """A user's access token; with `org`, scoped to that organization (the claims
        platform_common.verification reads into an `OrgScope`)."""
        claims = self._base_claims(str(user_id), now, ttl)
        claims.update(
            {"sid": str(session_id), "role": role, "email": email, "name": name, "scope": ""}
        )
        if email_verified is not None:
            claims["email_verified"] = email_verified
        if org is not None:
            claims.update(
                {
                    "org_id": str(org.org_id),
                    "org_slug": org.slug,
                    "org_role": org.role,
                    "permissions": sorted(permissions_for(org.role)),
                    "org_checked_at": org.checked_at_ms,
                }
            )
        return self._sign(claims)

    def personal_token_stand_in(
        self,
        *,
        user_id: uuid.UUID,
        pat_id: uuid.UUID,
        role: str,
        email: str,
        name: str,
        scopes: list[str],
        now: datetime,
        ttl: timedelta,
    ) -> str:
        """The signed token auth vouches for a personal access token with (platform_common.
        pat_exchange): its user and scopes, `pat_id` where a session token has `sid`."""
        claims = self._base_claims(str(user_id), now, ttl)
        claims.update(
            {
                "pat_id": str(pat_id),
                "role": role,
                "email": email,
                "name": name,
                "scope": " ".join(sorted(scopes)),
            }
        )
        return self._sign(claims)

    def service_token(self, *, name: str, scopes: list[str], now: datetime, ttl: timedelta) -> str:
        claims = self._base_claims(SERVICE_SUBJECT_PREFIX + name, now, ttl)
        claims.update({"role": "service", "scope": " ".join(sorted(scopes))})
        return self._sign(claims)
