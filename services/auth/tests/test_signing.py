"""TokenIssuer signs with the key parsed once: its tokens are those `jose.jwt.encode` makes
(the same header and payload bytes, a signature the public key verifies), for EC and RSA
keys, and a rotated key ring signs with its new current key."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwt

from auth.keys import KeyRing, generate_key_file
from auth.tokens import TokenIssuer
from platform_common.clock import utcnow


def rsa_key_file(path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_tokens_are_joses(tmp_path: Path, kind: str) -> None:
    (generate_key_file if kind == "ec" else rsa_key_file)(tmp_path / "current.pem")
    ring = KeyRing.load(tmp_path, create_if_missing=False)
    issuer = TokenIssuer(ring, issuer="https://auth.test", audience="platform")
    now = utcnow()
    for _ in range(2):  # the second with the key parsed the first time
        token = issuer.user_token(
            user_id=uuid.uuid4(),
            session_id=uuid.uuid4(),
            role="user",
            email="ada@example.com",
            name="Zoë Ŝmith 李",
            now=now,
            ttl=timedelta(minutes=15),
            email_verified=True,
        )
        claims = jwt.get_unverified_claims(token)
        key = ring.current
        expected = jwt.encode(claims, key.private_pem, key.algorithm, headers={"kid": key.kid})
        assert token.split(".")[:2] == expected.split(".")[:2]
        assert jwt.get_unverified_header(token) == {
            "alg": key.algorithm,
            "kid": key.kid,
            "typ": "JWT",
        }
        verified = jwt.decode(
            token, key.public_jwk, algorithms=[key.algorithm], audience="platform"
        )
        assert verified == claims and verified["name"] == "Zoë Ŝmith 李"


def test_a_new_current_key_signs(tmp_path: Path) -> None:
    generate_key_file(tmp_path / "one" / "current.pem")
    generate_key_file(tmp_path / "two" / "current.pem")
    one = KeyRing.load(tmp_path / "one", create_if_missing=False)
    two = KeyRing.load(tmp_path / "two", create_if_missing=False)
    issuer = TokenIssuer(one, issuer="https://auth.test", audience="platform")

    def kid() -> str:
        token = issuer.service_token(
            name="orgs", scopes=[], now=utcnow(), ttl=timedelta(seconds=60)
        )
        return str(jwt.get_unverified_header(token)["kid"])

    assert kid() == one.current.kid
    issuer.keys = two
    assert kid() == two.current.kid != one.current.kid
