"""Clients and accounts for the end-to-end tests, which speak to the platform through nginx.

`api` is an httpx client on the ingress; before each test every service is running again
(a failure test may have left one stopped). `accounts` registers and logs in fresh users
with unique emails, so the tests share one platform without sharing state.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest


@dataclass
class Account:
    id: str
    email: str
    password: str
    name: str
    access_token: str = ""
    refresh_token: str = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class Accounts:
    def __init__(self, api: httpx.Client, platform: Any) -> None:
        self.api = api
        self.platform = platform

    def register(self, label: str) -> Account:
        email = f"{label}-{secrets.token_hex(4)}@e2e-platform.io"
        password = secrets.token_urlsafe(16)
        name = f"{label.title()} E2E"
        response = self.api.post(
            "/api/v1/auth/register", json={"email": email, "password": password, "name": name}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["email"] == email
        return Account(body["id"], email, password, name)

    def login(self, account: Account) -> Account:
        response = self.api.post(
            "/api/v1/auth/login", json={"email": account.email, "password": account.password}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "bearer"
        account.access_token = body["access_token"]
        account.refresh_token = body["refresh_token"]
        return account

    def create(self, label: str) -> Account:
        return self.login(self.register(label))

    def admin(self) -> Account:
        account = Account(
            "", self.platform.admin_email, self.platform.admin_password, "Platform admin"
        )
        return self.login(account)


@pytest.fixture
def api(platform: Any, ingress: Any) -> Iterator[httpx.Client]:
    platform.ensure_running()
    with httpx.Client(base_url=ingress.url, timeout=10.0) as client:
        yield client


@pytest.fixture
def accounts(api: httpx.Client, platform: Any) -> Accounts:
    return Accounts(api, platform)
