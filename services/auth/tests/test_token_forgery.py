"""Attacks on access tokens, each of which must get 401 with WWW-Authenticate: Bearer."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwt

from platform_testing import assert_problem, bearer

SESSIONS = "/api/v1/auth/sessions"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.get_unverified_claims(token))


def header_of(token: str) -> dict[str, Any]:
    return dict(jwt.get_unverified_header(token))


def sign_with(app, claims: dict[str, Any], *, kid: str | None = None) -> str:  # type: ignore[no-untyped-def]
    key = app.state.keyring.current
    return str(
        jwt.encode(claims, key.private_pem, algorithm="ES256", headers={"kid": kid or key.kid})
    )


async def assert_rejected(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get(SESSIONS, headers=bearer(token))
    assert_problem(response, 401, "invalid_token")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.fixture
async def genuine(api) -> str:  # type: ignore[no-untyped-def]
    return str((await api.signed_in()).token)


async def test_genuine_token_is_accepted(client: httpx.AsyncClient, genuine: str) -> None:
    response = await client.get(SESSIONS, headers=bearer(genuine))
    assert response.status_code == 200


async def test_alg_none(client: httpx.AsyncClient, genuine: str) -> None:
    claims = claims_of(genuine)
    claims["role"] = "admin"
    for alg in ("none", "None", "NONE"):
        header = {"alg": alg, "typ": "JWT", "kid": header_of(genuine)["kid"]}
        token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}."
        await assert_rejected(client, token)


async def test_hs256_signed_with_the_public_key(
    client: httpx.AsyncClient, app, genuine: str
) -> None:  # type: ignore[no-untyped-def]
    # The classic key-confusion attack: the public key used as an HMAC secret.
    public_pem = (
        serialization.load_pem_private_key(
            app.state.keyring.current.private_pem.encode(), password=None
        )
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    claims = claims_of(genuine)
    kid = header_of(genuine)["kid"]
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    import hashlib
    import hmac

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    for secret in (public_pem, json.dumps(app.state.keyring.current.public_jwk).encode()):
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        await assert_rejected(client, f"{signing_input}.{b64(signature)}")


async def test_wrong_issuer_and_audience(client: httpx.AsyncClient, app, genuine: str) -> None:  # type: ignore[no-untyped-def]
    for field, value in (("iss", "https://evil.example"), ("aud", "someone-else")):
        claims = claims_of(genuine)
        claims[field] = value
        await assert_rejected(client, sign_with(app, claims))


async def test_expired(client: httpx.AsyncClient, app, genuine: str) -> None:  # type: ignore[no-untyped-def]
    claims = claims_of(genuine)
    claims["iat"] = int(time.time()) - 3600
    claims["nbf"] = claims["iat"]
    claims["exp"] = int(time.time()) - 60
    await assert_rejected(client, sign_with(app, claims))


async def test_unknown_kid_and_foreign_key(client: httpx.AsyncClient, genuine: str) -> None:
    foreign = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    claims = claims_of(genuine)
    # Signed by a key we never published, under an unknown kid and under our own kid.
    for kid in ("unknown-kid", header_of(genuine)["kid"]):
        token = jwt.encode(claims, foreign, algorithm="ES256", headers={"kid": kid})
        await assert_rejected(client, token)
    no_kid = jwt.encode(claims, foreign, algorithm="ES256")
    await assert_rejected(client, no_kid)


async def test_tampered_payload_or_signature(client: httpx.AsyncClient, genuine: str) -> None:
    head, payload, signature = genuine.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["role"] = "admin"
    await assert_rejected(client, f"{head}.{b64(json.dumps(claims).encode())}.{signature}")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    await assert_rejected(client, f"{head}.{payload}.{flipped}")


async def test_missing_claims(client: httpx.AsyncClient, app, genuine: str) -> None:  # type: ignore[no-untyped-def]
    for missing in ("exp", "sub", "jti", "sid", "role"):
        claims = claims_of(genuine)
        del claims[missing]
        await assert_rejected(client, sign_with(app, claims))
    claims = claims_of(genuine)
    claims["sub"] = "not-a-uuid"
    await assert_rejected(client, sign_with(app, claims))


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer ", "Basic abc", "Bearer not.a.jwt", "bearer x.y"]
)
async def test_malformed_headers(client: httpx.AsyncClient, header: str) -> None:
    response = await client.get(SESSIONS, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_revoked_session_token(client: httpx.AsyncClient, api) -> None:  # type: ignore[no-untyped-def]
    user = await api.signed_in()
    await client.post("/api/v1/auth/logout", json={"refresh_token": user.refresh_token})
    await assert_rejected(client, user.token)


async def test_forged_session_id_is_not_a_bypass(
    client: httpx.AsyncClient, app, genuine: str
) -> None:  # type: ignore[no-untyped-def]
    # A validly signed token for a session that never existed still needs a live session for
    # session endpoints: it lists nothing rather than someone else's sessions.
    claims = claims_of(genuine)
    claims["sid"] = str(uuid.uuid4())
    response = await client.get(SESSIONS, headers=bearer(sign_with(app, claims)))
    assert response.status_code == 200
    assert all(item["current"] is False for item in response.json()["items"])
