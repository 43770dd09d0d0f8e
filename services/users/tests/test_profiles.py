"""GET /{id}, POST /lookup and the admin list (its search `q`: test_search.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
import pytest

from platform_testing import assert_problem

if TYPE_CHECKING:
    from conftest import FakeAuth


USERS = "/api/v1/users"


# GET /{id} -------------------------------------------------------------------------------


async def test_own_profile_by_id(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    caller = auth.user()

    response = await client.get(f"{USERS}/{caller.id}", headers=caller.headers)

    assert response.status_code == 200
    assert response.json()["id"] == str(caller.id)
    assert "organizations" not in response.json()


async def test_another_users_profile_is_404(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    other = await auth.register(client)
    caller = auth.user()

    response = await client.get(f"{USERS}/{other['id']}", headers=caller.headers)

    assert_problem(response, 404, "not_found")


async def test_admin_reads_anyones_profile(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    other = await auth.register(client, name="Someone")

    response = await client.get(f"{USERS}/{other['id']}", headers=auth.admin().headers)

    assert response.status_code == 200
    assert response.json()["name"] == "Someone"


async def test_admin_unknown_id_is_404(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    response = await client.get(f"{USERS}/{uuid.uuid4()}", headers=auth.admin().headers)

    assert_problem(response, 404, "not_found")


async def test_malformed_id_is_422(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    response = await client.get(f"{USERS}/not-a-uuid", headers=auth.admin().headers)

    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["field"] == "user_id"


# POST /lookup ----------------------------------------------------------------------------


async def test_lookup_answers_existing_ids_in_order_once(
    client: httpx.AsyncClient, auth: FakeAuth
) -> None:
    a = await auth.register(client, name="A", email="a@example.com")
    b = await auth.register(client, name="B", email="b@example.com")
    unknown = str(uuid.uuid4())

    response = await client.post(
        f"{USERS}/lookup",
        headers=auth.user().headers,
        json={"ids": [b["id"], unknown, a["id"], b["id"]]},
    )

    assert response.status_code == 200, response.text
    assert response.json() == [
        {"id": b["id"], "name": "B", "email": "b@example.com"},
        {"id": a["id"], "name": "A", "email": "a@example.com"},
    ]


async def test_lookup_with_a_service_token(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    a = await auth.register(client, name="A")

    response = await client.post(
        f"{USERS}/lookup", headers=auth.service("orgs", scopes=""), json={"ids": [a["id"]]}
    )

    assert response.status_code == 200
    assert [item["id"] for item in response.json()] == [a["id"]]


async def test_lookup_of_100_ids_is_allowed(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    ids = [str(uuid.uuid4()) for _ in range(100)]

    response = await client.post(f"{USERS}/lookup", headers=auth.user().headers, json={"ids": ids})

    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize(
    "body",
    [
        {"ids": [str(uuid.uuid4()) for _ in range(101)]},
        {"ids": []},
        {"ids": ["not-a-uuid"]},
        {"ids": "nope"},
        {},
    ],
    ids=["101 ids", "no ids", "bad uuid", "not a list", "missing"],
)
async def test_lookup_rejects_bad_bodies(
    client: httpx.AsyncClient, auth: FakeAuth, body: dict[str, object]
) -> None:
    response = await client.post(f"{USERS}/lookup", headers=auth.user().headers, json=body)

    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"][0]["field"].startswith("ids")


# GET / (admin list) ----------------------------------------------------------------------


async def test_admin_list_paginates_oldest_first(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [
        (await auth.register(client, created_at=start + timedelta(minutes=i)))["id"]
        for i in range(25)
    ]
    admin = auth.admin()

    page2 = await client.get(USERS, headers=admin.headers, params={"page": 2, "limit": 10})
    page3 = await client.get(USERS, headers=admin.headers, params={"page": 3, "limit": 10})

    assert page2.status_code == 200, page2.text
    body = page2.json()
    assert (body["total"], body["page"], body["limit"], body["pages"]) == (25, 2, 10, 3)
    assert [item["id"] for item in body["items"]] == ids[10:20]
    assert set(body["items"][0]) >= {
        "id",
        "email",
        "name",
        "role",
        "is_active",
        "created_at",
        "updated_at",
    }
    assert [item["id"] for item in page3.json()["items"]] == ids[20:]


async def test_admin_list_filters_on_is_active(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    active = await auth.register(client, name="Active")
    disabled = await auth.register(client, name="Disabled", is_active=False)
    admin = auth.admin()

    only_disabled = await client.get(USERS, headers=admin.headers, params={"is_active": "false"})
    only_active = await client.get(USERS, headers=admin.headers, params={"is_active": "true"})

    assert [i["id"] for i in only_disabled.json()["items"]] == [disabled["id"]]
    assert [i["id"] for i in only_active.json()["items"]] == [active["id"]]


async def test_admin_list_is_for_admins(client: httpx.AsyncClient, auth: FakeAuth) -> None:
    assert_problem(await client.get(USERS, headers=auth.user().headers), 403, "forbidden")
    assert_problem(await client.get(USERS, headers=auth.service()), 403, "forbidden")


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"page": 0}, {"is_active": "maybe"}, {"q": "x" * 201}],
)
async def test_admin_list_rejects_bad_parameters(
    client: httpx.AsyncClient, auth: FakeAuth, params: dict[str, object]
) -> None:
    response = await client.get(USERS, headers=auth.admin().headers, params=params)

    assert_problem(response, 422, "validation_error")
