"""The admin list's search `q`: a case-insensitive substring of the name or email, with
LIKE's wildcards matched literally, served by the trigram indexes."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import ClauseElement, Executable, Select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from platform_testing import Caller
from users.repository import ProfileRepository

if TYPE_CHECKING:
    from conftest import FakeAuth


USERS = "/api/v1/users"


async def search_ids(client: httpx.AsyncClient, admin: Caller, q: str) -> set[object]:
    response = await client.get(USERS, headers=admin.headers, params={"q": q})
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


async def test_search_matches_name_or_email_case_insensitively(
    client: httpx.AsyncClient, auth: FakeAuth
) -> None:
    smith = await auth.register(client, name="Alice Smith", email="alice@corp.example")
    jones = await auth.register(client, name="Bob Jones", email="bob.SMITHERS@home.example")
    await auth.register(client, name="Carol", email="carol@corp.example")
    admin = auth.admin()

    assert await search_ids(client, admin, "SMITH") == {smith["id"], jones["id"]}
    assert await search_ids(client, admin, "bob.smithers@HOME") == {jones["id"]}
    assert await search_ids(client, admin, "ice sm") == {smith["id"]}
    assert await search_ids(client, admin, "nobody") == set()


# Each pair: the name `q` must find, and a decoy it would also find were `q`'s characters
# read as LIKE syntax (`%` any run, `_` any one character, `\` PostgreSQL's default escape,
# `/` the escape character `autoescape` uses).
WILDCARDS = [
    ("%", "100% Real", "Plain"),
    ("0% r", "100% Real", "1000 Real"),
    ("_", "snake_case", "Plain"),
    ("e_c", "snake_case", "snakeXcase"),
    ("\\", "back\\slash", "Plain"),
    ("k\\s", "back\\slash", "backslash"),
    ("a/b", "a/b testing", "ab testing"),
]


@pytest.mark.parametrize(("q", "name", "decoy"), WILDCARDS, ids=[w[0] for w in WILDCARDS])
async def test_search_matches_wildcards_literally(
    client: httpx.AsyncClient, auth: FakeAuth, q: str, name: str, decoy: str
) -> None:
    wanted = await auth.register(client, name=name)
    await auth.register(client, name=decoy)

    assert await search_ids(client, auth.admin(), q) == {wanted["id"]}


class Explain(Executable, ClauseElement):
    """`EXPLAIN <statement>`, executed with the statement's own bound parameters."""

    inherit_cache = False

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement


@compiles(Explain, "postgresql")
def _compile_explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN " + compiler.process(element.statement, **kw)


async def test_search_uses_the_trigram_indexes(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        transaction = await conn.begin()
        try:
            await conn.execute(
                text(
                    "INSERT INTO profiles (id, email, name, role, is_active, source_version)"
                    " SELECT gen_random_uuid(), md5(i::text) || '@example.com', md5((-i)::text),"
                    " 'user', true, 1"
                    " FROM generate_series(1, :rows) AS i"
                ),
                {"rows": 20_000},
            )
            # Statistics, so the planner knows the table's size and how rare `q`'s trigrams are.
            await conn.execute(text("ANALYZE profiles"))
            # Rules the sequential scan out so the plan shows whether an index *can* serve
            # the predicate; with a seqscan available a small table would not tell.
            await conn.execute(text("SET LOCAL enable_seqscan = off"))
            # Ten characters of one row's email: selective, as a real search is.
            wanted = hashlib.md5(b"1234").hexdigest()  # noqa: S324 - test data, not security
            async with AsyncSession(conn) as session:
                profiles = ProfileRepository(session)
                statement = profiles.search_statement(wanted[5:15], is_active=None)
                # What paginate runs: the count (without ORDER BY) and the page.
                for explained in (statement.order_by(None), statement.limit(20)):
                    plan = "\n".join((await session.execute(Explain(explained))).scalars())
                    assert "ix_profiles_name_trgm" in plan, plan
                    assert "ix_profiles_email_trgm" in plan, plan

                found, total = await profiles.search(
                    q=wanted[5:15].upper(), is_active=None, offset=0, limit=20
                )
                assert total == 1
                assert [p.email for p in found] == [f"{wanted}@example.com"]
        finally:
            await transaction.rollback()
