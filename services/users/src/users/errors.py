"""users' errors, each with its HTTP status and stable `code`."""

from __future__ import annotations

from platform_common.errors import Gone, NotFound, ProblemError


class ProfileNotFound(NotFound, code="not_found", title="Profile not found"):
    def __init__(self, detail: str = "No such user.") -> None:
        super().__init__(detail)


class EventIdMismatch(
    ProblemError, status=422, code="id_mismatch", title="The event is about another user"
):
    def __init__(self) -> None:
        super().__init__(
            "The body's `id` differs from the id in the path.",
            extra={
                "errors": [
                    {"field": "id", "message": "must equal the path's id", "type": self.code}
                ]
            },
        )


class UserDeleted(Gone, code="user_deleted", title="User deleted"):
    def __init__(self) -> None:
        super().__init__("This account has been deleted; the event is not applied.")
