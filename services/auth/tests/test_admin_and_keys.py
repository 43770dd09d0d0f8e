"""Admin disable/enable, the JWKS, OIDC discovery, and key rotation."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from jose import jwt

from auth.keys import KeyRing, generate_key_file
from auth.repository import UserRepository
from platform_testing import assert_problem

if TYPE_CHECKING:
    from conftest import AuthApi


async def test_disable_ends_sessions_and_blocks_login(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    user = await api.signed_in()
    admin = await api.admin()
    r = await client.post(f"/api/v1/auth/users/{user.id}/disable", headers=admin.headers)
    assert r.status_code == 204
    assert (await client.get("/api/v1/auth/sessions", headers=user.headers)).status_code == 401
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refresh.status_code == 401
    login = await client.post(
        "/api/v1/auth/login",
        json={"email": user.email, "password": "a perfectly fine passphrase"},
    )
    assert_problem(login, 403, "account_disabled")

    r = await client.post(f"/api/v1/auth/users/{user.id}/enable", headers=admin.headers)
    assert r.status_code == 204
    await api.login(user.email)


async def test_only_admins_disable(client: httpx.AsyncClient, api: AuthApi) -> None:
    victim = await api.signed_in()
    attacker = await api.signed_in()
    r = await client.post(f"/api/v1/auth/users/{victim.id}/disable", headers=attacker.headers)
    assert_problem(r, 403, "forbidden")
    anonymous = await client.post(f"/api/v1/auth/users/{victim.id}/disable")
    assert_problem(anonymous, 401, "not_authenticated")
    assert (await client.get("/api/v1/auth/sessions", headers=victim.headers)).status_code == 200


async def test_disable_unknown_user(client: httpx.AsyncClient, api: AuthApi) -> None:
    admin = await api.admin()
    r = await client.post(f"/api/v1/auth/users/{uuid.uuid4()}/disable", headers=admin.headers)
    assert_problem(r, 404, "user_not_found")


async def test_admin_tokens_carry_the_admin_role(api: AuthApi) -> None:
    admin = await api.admin()
    assert jwt.get_unverified_claims(admin.token)["role"] == "admin"


async def test_jwks_and_discovery(client: httpx.AsyncClient, api: AuthApi) -> None:
    jwks = (await client.get("/api/v1/auth/jwks.json")).json()
    assert jwks["keys"] and all({"kid", "kty", "alg", "use"} <= k.keys() for k in jwks["keys"])
    assert all("d" not in k for k in jwks["keys"])  # never the private half
    user = await api.signed_in()
    kid = jwt.get_unverified_header(user.token)["kid"]
    assert kid in {k["kid"] for k in jwks["keys"]}
    claims = jwt.get_unverified_claims(user.token)
    assert {"iss", "aud", "sub", "exp", "iat", "jti", "sid", "role"} <= claims.keys()
    assert claims["exp"] - claims["iat"] == 900

    config = (await client.get("/api/v1/auth/.well-known/openid-configuration")).json()
    assert config["issuer"] == claims["iss"]
    assert config["jwks_uri"].endswith("/api/v1/auth/jwks.json")
    assert config["token_endpoint"].endswith("/api/v1/auth/token")


def test_keyring_rotation_publishes_previous_keys(tmp_path: Path) -> None:
    first = KeyRing.load(tmp_path, create_if_missing=True)
    (tmp_path / "current.pem").rename(tmp_path / "previous.pem")
    generate_key_file(tmp_path / "current.pem")
    rotated = KeyRing.load(tmp_path, create_if_missing=False)
    assert rotated.current.kid != first.current.kid
    kids = [k["kid"] for k in rotated.jwks()["keys"]]
    assert kids == [rotated.current.kid, first.current.kid]
    # The kid is the key's thumbprint: stable across loads and replicas.
    assert KeyRing.load(tmp_path, create_if_missing=False).current.kid == rotated.current.kid


def test_production_refuses_to_start_without_keys(tmp_path: Path, make_settings) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from auth.app import create_app
    from platform_common.settings import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"current\.pem"):
        create_app(make_settings(environment="production", signing_keys_dir=tmp_path / "none"))
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        create_app(make_settings(environment="production", database_url=None))


async def test_the_last_admin_cannot_disable_itself(
    client: httpx.AsyncClient, api: AuthApi
) -> None:
    admin = await api.admin()
    response = await client.post(f"/api/v1/auth/users/{admin.id}/disable", headers=admin.headers)
    assert_problem(response, 409, "last_admin")
    # Nothing changed: still active, the session still works.
    me = await client.get("/api/v1/auth/sessions", headers=admin.headers)
    assert me.status_code == 200


async def test_two_admins_disabling_each_other_at_once_leave_one(
    client: httpx.AsyncClient, api: AuthApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = await api.admin(), await api.admin()
    counted = UserRepository.other_active_admins

    async def count_then_dawdle(self: UserRepository, user_id: uuid.UUID) -> int:
        # Hold the window between counting and committing open, so that without the lock
        # both requests would count one other admin and both go ahead.
        others = await counted(self, user_id)
        await asyncio.sleep(0.3)
        return others

    monkeypatch.setattr(UserRepository, "other_active_admins", count_then_dawdle)
    answers = await asyncio.gather(
        client.post(f"/api/v1/auth/users/{second.id}/disable", headers=first.headers),
        client.post(f"/api/v1/auth/users/{first.id}/disable", headers=second.headers),
    )
    assert sorted(r.status_code for r in answers) in ([204, 409], [204, 401])
    # One admin is still active and can act: the other is disabled.
    survivors = [
        a
        for a in (first, second)
        if (await api.client.get("/api/v1/auth/sessions", headers=a.headers)).status_code == 200
    ]
    assert len(survivors) == 1
