"""Access-token verification, shared by every service (the FastAPI side: `security`).

```
Authorization: Bearer <jwt>
  -> header: alg must be one of the configured asymmetric algorithms, kid required
  -> key:    KeySource.get_key(kid)  (JWKS over HTTP, cached; refetched when a kid is new)
  -> claims: signature, exp, iat, iss, aud, sub, jti checked by python-jose with explicit
             algorithms
  -> org:    org_id, org_slug, org_role, permissions: all or none (an org-scoped token)
  -> sid:    RevocationStore.is_revoked(sid, org marker) (Redis, one MGET, ~1 s local cache)
  -> Principal
```

An org-scoped token (`POST /api/v1/auth/org-token`) is a user token with four more claims
and `org_checked_at` (milliseconds, Redis' clock, read before auth asked orgs for the
membership). orgs writes a marker per org and user when the member's role changes, the
member leaves or the org is deleted (`RevocationStore.revoke_org_tokens`); a token checked
at or before the marker is refused, at every service, within the revocation cache's second.

Personal access tokens (`Authorization: Bearer ipt_...`) are opaque: the verifier trades one
for a short-lived signed token of the same user and scopes at auth (`PatExchanger`; the PAT
itself authenticates the call), verifies that like any other, and keeps the outcome, valid or
not, for `pat_cache_seconds` (at most 5): auth is asked at most once per PAT per few seconds
and process, and a deleted PAT fails everywhere within that time. The exchanged token carries
`pat_id` instead of `sid` and is refused when presented as a bearer itself.

users and orgs verify locally with `JWKSKeySource`; auth verifies its own tokens with the
keys it holds. Any failure is a 401 with `WWW-Authenticate: Bearer`; only an unreachable
JWKS or Redis is a 503, because then the token may well be valid.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from jose import jwk, jwt
from jose.backends.base import Key
from jose.exceptions import ExpiredSignatureError, JOSEError, JWTClaimsError
from prometheus_client import Counter
from redis.exceptions import RedisError

from platform_common.errors import DependencyUnavailable, Unauthorized
from platform_common.opaque_tokens import hash_token
from platform_common.permissions import ORG_ROLES, PERMISSIONS
from platform_common.revocation import OrgMarker, RevocationStateLost, RevocationStore

SERVICE_SUBJECT_PREFIX = "svc:"
PAT_PREFIX = "ipt_"
VERIFIED_CACHE_SIZE = 10_000
VERIFIED_TTL_SECONDS = 60.0


class InvalidToken(Unauthorized):
    code = "invalid_token"


@dataclass(frozen=True)
class OrgScope:
    """The organization an org-scoped access token is for, and what it may do there."""

    org_id: uuid.UUID
    slug: str
    role: str
    permissions: frozenset[str]
    checked_at_ms: int

    def matches(self, org: str) -> bool:
        """Whether `org` (a slug or an id, as a path names it) is this token's org."""
        return org == self.slug or org == str(self.org_id)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (with a session) or a service."""

    subject: str
    role: str
    token_id: str
    session_id: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    email: str | None = None
    name: str | None = None
    # Set for org-scoped access tokens only.
    org: OrgScope | None = None
    # Set for personal access tokens only: which one (its scopes are `scopes`).
    pat_id: str | None = None

    @property
    def via_pat(self) -> bool:
        return self.pat_id is not None

    @property
    def is_service(self) -> bool:
        return self.subject.startswith(SERVICE_SUBJECT_PREFIX)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin" and not self.is_service

    @property
    def user_id(self) -> uuid.UUID:
        return uuid.UUID(self.subject)


class KeySource(Protocol):
    async def get_key(self, kid: str) -> dict[str, Any] | None: ...


class StaticKeySource:
    """Keys held in memory (auth verifying its own tokens, and tests)."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = {k["kid"]: k for k in keys}

    async def get_key(self, kid: str) -> dict[str, Any] | None:
        return self.keys.get(kid)


class JWKSKeySource:
    """The issuer's JWKS, fetched over HTTP and cached.

    Refetched when the cache is older than `cache_seconds`, or at once when a token names a
    `kid` it has not seen (a key rotation), but never more often than
    `min_refresh_interval` so that tokens with random kids cannot turn into a flood of
    requests to auth. A failed fetch keeps serving the keys it has.
    """

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        *,
        cache_seconds: float = 300.0,
        min_refresh_interval: float = 1.0,
        refreshes: Counter | None = None,
    ) -> None:
        self.url = url
        self.refreshes = refreshes
        self.client = client
        self.cache_seconds = cache_seconds
        self.min_refresh_interval = min_refresh_interval
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def get_key(self, kid: str) -> dict[str, Any] | None:
        now = time.monotonic()
        stale = now - self._fetched_at > self.cache_seconds
        if stale or (kid not in self._keys and now - self._fetched_at > self.min_refresh_interval):
            await self._refresh()
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        async with self._lock:
            fetched_at = self._fetched_at
            if time.monotonic() - fetched_at < self.min_refresh_interval:
                return  # another request refreshed while we waited
            try:
                response = await self.client.get(self.url)
                response.raise_for_status()
                keys = {k["kid"]: k for k in response.json()["keys"] if "kid" in k}
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                self._fetched_at = time.monotonic()
                self._count("failed")
                if not self._keys:
                    raise DependencyUnavailable("The token issuer's keys are unavailable.") from exc
                return
            self._keys = keys
            self._fetched_at = time.monotonic()
            self._count("ok")

    def _count(self, outcome: str) -> None:
        if self.refreshes is not None:
            self.refreshes.labels(outcome=outcome).inc()


class PatExchanger(Protocol):
    async def exchange(self, token: str) -> str:
        """A signed access token standing for the personal access token `token`; raises
        InvalidToken when auth does not know it (deleted, expired, its user disabled)."""
        ...


class TokenVerifier:
    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        algorithms: list[str],
        revocations: RevocationStore | None,
        leeway_seconds: int = 5,
        pat_exchanger: PatExchanger | None = None,
        pat_cache_seconds: float = 4.0,
    ) -> None:
        self.keys = keys
        self.pat_exchanger = pat_exchanger
        self.pat_cache_seconds = pat_cache_seconds
        # SHA-256 of a PAT -> (monotonic deadline, what auth said of it).
        self._pats: dict[str, tuple[float, Principal | InvalidToken]] = {}
        self._pats_asked: dict[str, asyncio.Future[Principal | InvalidToken]] = {}
        self.issuer = issuer
        self.audience = audience
        self.algorithms = list(algorithms)
        self.revocations = revocations
        self.leeway_seconds = leeway_seconds
        # Parsing a JWK into a key object costs more than verifying a signature with it.
        self._constructed: dict[tuple[str, str], tuple[dict[str, Any], Key]] = {}
        # Tokens already verified: token -> (monotonic deadline, principal). A client sends
        # the same token for 15 minutes, and the signature and claims cannot change; what
        # can change (revocation) is checked on every request all the same. An entry lives
        # until the token expires, and never longer than VERIFIED_TTL_SECONDS, so a key
        # withdrawn from the JWKS stops working about as soon as the JWKS cache notices.
        self._verified: dict[str, tuple[float, Principal]] = {}

    def _key_object(self, kid: str, alg: str, key: dict[str, Any]) -> Key:
        # The key source hands out the same dict until its JWKS is refetched; a new dict (a
        # refetch, possibly with new material under the same kid) is parsed again.
        cached = self._constructed.get((kid, alg))
        if cached is not None and cached[0] is key:
            return cached[1]
        if len(self._constructed) > 64:
            self._constructed.clear()
        constructed = jwk.construct(key, alg)
        self._constructed[(kid, alg)] = (key, constructed)
        return constructed

    async def verify(self, token: str) -> Principal:
        if token.startswith(PAT_PREFIX):
            return await self._verify_pat(token)
        cached = self._verified.get(token)
        if cached is not None and cached[0] > time.monotonic():
            principal = cached[1]
        else:
            principal = await self._verify_signed(token)
        if principal.via_pat:
            raise InvalidToken("This token stands for a personal access token; send that.")
        await self._check_revocation(principal)
        return principal

    async def _verify_pat(self, token: str) -> Principal:
        key = hash_token(token)
        now = time.monotonic()
        cached = self._pats.get(key)
        if cached is not None and cached[0] > now:
            outcome = cached[1]
        elif key in self._pats_asked:
            # A burst of requests with a PAT not cached yet: one question to auth for all.
            outcome = await asyncio.shield(self._pats_asked[key])
        else:
            asked = asyncio.get_running_loop().create_future()
            asked.add_done_callback(_retrieve)
            self._pats_asked[key] = asked
            try:
                outcome = await self._ask_auth(token)
            except BaseException as exc:
                if isinstance(exc, Exception):
                    asked.set_exception(exc)
                else:
                    asked.cancel()
                raise
            finally:
                del self._pats_asked[key]
            asked.set_result(outcome)
            if len(self._pats) >= VERIFIED_CACHE_SIZE:
                self._pats.clear()
            self._pats[key] = (now + self.pat_cache_seconds, outcome)
        if isinstance(outcome, InvalidToken):
            raise outcome
        return outcome

    async def _ask_auth(self, token: str) -> Principal | InvalidToken:
        if self.pat_exchanger is None:
            return InvalidToken("Personal access tokens are not accepted here.")
        try:
            outcome = await self._verify_signed(await self.pat_exchanger.exchange(token))
        except InvalidToken as exc:
            return exc
        if not outcome.via_pat:
            return InvalidToken("auth did not vouch for this personal access token.")
        return outcome

    async def _verify_signed(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except JOSEError as exc:
            raise InvalidToken("The access token is malformed.") from exc
        alg = header.get("alg")
        kid = header.get("kid")
        if alg not in self.algorithms:
            raise InvalidToken("The access token's algorithm is not accepted.")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("The access token names no signing key.")
        key = await self.keys.get_key(kid)
        if key is None:
            raise InvalidToken("The access token is signed by an unknown key.")
        if key.get("alg") not in (None, alg):
            raise InvalidToken("The access token's algorithm does not match its key.")
        try:
            key_object = self._key_object(kid, alg, key)
        except JOSEError as exc:
            raise InvalidToken("The access token's signing key is not usable.") from exc
        try:
            claims = jwt.decode(
                token,
                key_object,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require_exp": True,
                    "require_iat": True,
                    "require_sub": True,
                    "require_jti": True,
                    "require_aud": True,
                    "require_iss": True,
                    "leeway": self.leeway_seconds,
                },
            )
        except ExpiredSignatureError as exc:
            raise InvalidToken("The access token has expired.") from exc
        except JWTClaimsError as exc:
            raise InvalidToken("The access token's claims are not valid here.") from exc
        except JOSEError as exc:
            raise InvalidToken("The access token's signature is not valid.") from exc

        now = time.time()
        exp, iat = claims["exp"], claims["iat"]
        # python-jose reads a numeric string as a number; the JWT spec says NumericDate.
        if not _is_number(exp) or not _is_number(iat):
            raise InvalidToken("The access token's exp and iat must be numbers.")
        if iat > now + self.leeway_seconds:
            raise InvalidToken("The access token was issued in the future.")
        principal = _principal_from_claims(claims)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        lifetime = min(exp + self.leeway_seconds - now, VERIFIED_TTL_SECONDS)
        self._verified[token] = (time.monotonic() + lifetime, principal)
        return principal

    async def _check_revocation(self, principal: Principal) -> None:
        if principal.session_id and self.revocations is not None:
            org_marker = (
                OrgMarker(str(principal.org.org_id), principal.subject, principal.org.checked_at_ms)
                if principal.org is not None
                else None
            )
            try:
                revoked = await self.revocations.is_revoked(principal.session_id, org_marker)
            except RevocationStateLost as exc:
                # Fail closed: a revoked token must not come back with Redis' lost memory.
                raise DependencyUnavailable(
                    "Token revocation state is being rebuilt; retry in a moment.",
                    headers={"Retry-After": "1"},
                ) from exc
            except RedisError as exc:
                raise DependencyUnavailable("Token revocation state is unavailable.") from exc
            if revoked:
                raise InvalidToken(
                    "This access token has been revoked (its session ended, or the "
                    "membership it was issued for changed)."
                )


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a shared question's failure as seen: its asker re-raises it already."""
    if not future.cancelled():
        future.exception()


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _principal_from_claims(claims: dict[str, Any]) -> Principal:
    subject = str(claims["sub"])
    role = claims.get("role")
    sid = claims.get("sid")
    if subject.startswith(SERVICE_SUBJECT_PREFIX):
        role = "service"
    else:
        try:
            uuid.UUID(subject)
        except ValueError as exc:
            raise InvalidToken("The access token's subject is not valid.") from exc
        pat_id = claims.get("pat_id")
        if role not in ("user", "admin") or not (isinstance(sid, str) or isinstance(pat_id, str)):
            raise InvalidToken("The access token lacks its role or session.")
    scope = claims.get("scope", "")
    org = _org_scope(claims) if not subject.startswith(SERVICE_SUBJECT_PREFIX) else None
    return Principal(
        subject=subject,
        role=str(role),
        token_id=str(claims["jti"]),
        session_id=sid if isinstance(sid, str) else None,
        scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
        email=claims.get("email") if isinstance(claims.get("email"), str) else None,
        name=claims.get("name") if isinstance(claims.get("name"), str) else None,
        org=org,
        pat_id=claims["pat_id"] if isinstance(claims.get("pat_id"), str) else None,
    )


ORG_CLAIMS = ("org_id", "org_slug", "org_role", "permissions", "org_checked_at")


def _org_scope(claims: dict[str, Any]) -> OrgScope | None:
    """The org claims, all present and well-formed, or none at all (a plain user token)."""
    present = [name for name in ORG_CLAIMS if name in claims]
    if not present:
        return None
    if len(present) != len(ORG_CLAIMS):
        raise InvalidToken("The access token's organization claims are incomplete.")
    slug, role, permissions = claims["org_slug"], claims["org_role"], claims["permissions"]
    checked_at = claims["org_checked_at"]
    try:
        org_id = uuid.UUID(str(claims["org_id"]))
    except ValueError as exc:
        raise InvalidToken("The access token's organization is not valid.") from exc
    if (
        not isinstance(slug, str)
        or role not in ORG_ROLES
        or not isinstance(permissions, list)
        or not all(p in PERMISSIONS for p in permissions)
        or not isinstance(checked_at, int)
        or isinstance(checked_at, bool)
    ):
        raise InvalidToken("The access token's organization claims are not valid.")
    return OrgScope(org_id, slug, role, frozenset(permissions), checked_at)
