"""orgs' errors, each with its HTTP status and stable `code`.

```
NotFound (404)      OrgNotFound `not_found` (also for orgs the caller is not a member of),
                    MemberNotFound `member_not_found`, UserNotFound `user_not_found`,
                    InvitationNotFound `invitation_not_found`
Forbidden (403)     NotAllowed `forbidden`, EmailMismatch `email_mismatch`
Conflict (409)      SlugTaken `slug_taken`, AlreadyMember `already_member`,
                    LastOwner `last_owner`, InvitationAlreadyAccepted `invitation_accepted`
Gone (410)          InvitationExpired `invitation_expired`, InvitationRevoked
                    `invitation_revoked`, InvitationUsed `invitation_used`
```
"""

from __future__ import annotations

from typing import Any, ClassVar

from platform_common.errors import Conflict, Forbidden, Gone, NotFound, ProblemError


class _Declared(ProblemError):
    """Lets an error declare its code, title and default detail in its class line."""

    _detail: ClassVar[str | None] = None

    def __init_subclass__(
        cls, *, code: str, title: str | None = None, detail: str | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.code, cls.title, cls._detail = code, title, detail

    @classmethod
    def default_detail(cls) -> str:
        return cls._detail or super().default_detail()


class OrgNotFound(
    NotFound,
    _Declared,
    code="not_found",
    title="Organization not found",
    detail="No such organization.",
): ...


class MemberNotFound(NotFound, _Declared, code="member_not_found", title="Member not found"): ...


class UserNotFound(NotFound, _Declared, code="user_not_found", title="User not found"): ...


class InvitationNotFound(
    NotFound, _Declared, code="invitation_not_found", title="Invitation not found"
): ...


class NotAllowed(Forbidden, _Declared, code="forbidden"): ...


class EmailMismatch(
    Forbidden, _Declared, code="email_mismatch", title="Invitation is for another email address"
): ...


class SlugTaken(Conflict, _Declared, code="slug_taken", title="Slug already taken"): ...


class AlreadyMember(Conflict, _Declared, code="already_member", title="Already a member"): ...


class LastOwner(
    Conflict,
    _Declared,
    code="last_owner",
    title="An organization needs an owner",
    detail="The organization would be left without an owner.",
): ...


class InvitationAlreadyAccepted(
    Conflict, _Declared, code="invitation_accepted", title="Invitation already accepted"
): ...


class InvitationExpired(Gone, _Declared, code="invitation_expired", title="Invitation expired"): ...


class InvitationRevoked(Gone, _Declared, code="invitation_revoked", title="Invitation revoked"): ...


class InvitationUsed(Gone, _Declared, code="invitation_used", title="Invitation already used"): ...
