"""Signing keys and the JWKS.

The folder holds `current.pem` (the key that signs) and optionally older `*.pem` keys whose
public halves stay in the JWKS until every token they signed has expired. Each key's `kid`
is its RFC 7638 JWK thumbprint, so the same key always has the same id on every replica.

Production loads the folder (a mounted Kubernetes Secret) and refuses to start without
`current.pem`; development creates it on first start and says so.

Rotation: put the new key in as `current.pem`, keep the old one as `previous.pem`, roll the
deployment; remove `previous.pem` after the access-token lifetime (15 min) has passed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk

from platform_common.settings import ConfigurationError

logger = logging.getLogger(__name__)

CURRENT_KEY_FILE = "current.pem"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private_pem: str
    public_jwk: dict[str, Any]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _load_key(path: Path) -> SigningKey:
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if isinstance(private, ec.EllipticCurvePrivateKey):
        if private.curve.name != "secp256r1":
            raise ConfigurationError(f"{path}: EC keys must use P-256 (ES256)")
        algorithm = "ES256"
    elif isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < 2048:
            raise ConfigurationError(f"{path}: RSA keys must have at least 2048 bits")
        algorithm = "RS256"
    else:
        raise ConfigurationError(f"{path}: only EC P-256 and RSA signing keys are supported")
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public = jwk.construct(public_pem.decode(), algorithm).to_dict()
    required = ("crv", "kty", "x", "y") if algorithm == "ES256" else ("e", "kty", "n")
    thumbprint_input = json.dumps(
        {k: public[k] for k in required}, separators=(",", ":"), sort_keys=True
    )
    kid = _b64url(hashlib.sha256(thumbprint_input.encode()).digest())
    public.update({"kid": kid, "use": "sig", "alg": algorithm})
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return SigningKey(kid=kid, algorithm=algorithm, private_pem=private_pem, public_jwk=public)


def generate_key_file(path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


@dataclass(frozen=True)
class KeyRing:
    current: SigningKey
    previous: tuple[SigningKey, ...]

    @classmethod
    def load(cls, folder: Path, *, create_if_missing: bool) -> KeyRing:
        current_path = folder / CURRENT_KEY_FILE
        if not current_path.exists():
            if not create_if_missing:
                raise ConfigurationError(
                    f"auth: no signing key at {current_path}; production needs "
                    "AUTH_SIGNING_KEYS_DIR with current.pem (see docs/deployment.md)"
                )
            generate_key_file(current_path)
            logger.warning("development: generated a new ES256 signing key at %s", current_path)
        current = _load_key(current_path)
        previous = tuple(
            _load_key(path)
            for path in sorted(folder.glob("*.pem"))
            if path.name != CURRENT_KEY_FILE
        )
        return cls(current=current, previous=previous)

    def jwks(self) -> dict[str, Any]:
        seen: set[str] = set()
        keys = []
        for key in (self.current, *self.previous):
            if key.kid not in seen:
                seen.add(key.kid)
                keys.append(key.public_jwk)
        return {"keys": keys}

    @property
    def algorithms(self) -> list[str]:
        return sorted({key.algorithm for key in (self.current, *self.previous)})
