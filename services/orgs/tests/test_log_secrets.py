"""No secret in any log line, on any path: an invitation token travels in the accept path,
which the access log, the dependency-failure warning and the last-resort 500 all name."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from orgs.service import InvitationService


def accept(token: str) -> str:
    return f"/api/v1/orgs/invitations/{token}/accept"


@pytest.mark.parametrize(
    ("failure", "status"),
    [(None, 201), (RuntimeError("a bug"), 500), (RedisConnectionError("gone"), 503)],
)
async def test_an_invitation_token_never_reaches_the_log(
    client: httpx.AsyncClient,
    world: Any,
    people: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception | None,
    status: int,
) -> None:
    invitee = people.user("invitee")
    issued = await client.post(
        f"/api/v1/orgs/{world.slug}/invitations",
        json={"email": invitee.email, "role": "member"},
        headers=world.admin.headers,
    )
    token = issued.json()["token"]
    if failure is not None:

        async def fail(*args: object, **kwargs: object) -> None:
            raise failure

        monkeypatch.setattr(InvitationService, "accept", fail)
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        response = await client.post(accept(token), headers=invitee.headers)
        # And a token that matches nothing, on the 4xx path.
        await client.post(accept(token + "x"), headers=invitee.headers)
    assert response.status_code == status, response.text
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "/invitations/{token}/accept" in logged
    assert token not in logged
