"""orgs' errors, each with its HTTP status and stable `code`.

```
NotFound (404)      OrgNotFound `not_found` (also for orgs the caller is not a member of),
                    MemberNotFound `member_not_found`, UserNotFound `user_not_found`,
                    InvitationNotFound `invitation_not_found`
Forbidden (403)     NotAllowed `forbidden`, EmailMismatch `email_mismatch`,
                    (and platform_common.security's OrgMismatch `org_mismatch`: an
                    org-scoped token of another org)
Conflict (409)      SlugTaken `slug_taken`, AlreadyMember `already_member`,
                    LastOwner `last_owner`, InvitationAlreadyAccepted `invitation_accepted`
Gone (410)          InvitationExpired `invitation_expired`, InvitationRevoked
                    `invitation_revoked`, InvitationUsed `invitation_used`
```
"""

from __future__ import annotations

from platform_common.errors import Conflict, Forbidden, Gone, NotFound, ProblemError


class OrgNotFound(
    NotFound,
    code="not_found",
    title="Organization not found",
    detail="No such organization.",
): ...


class MemberNotFound(NotFound, code="member_not_found", title="Member not found"): ...


class UserNotFound(NotFound, code="user_not_found", title="User not found"): ...


class InvitationNotFound(NotFound, code="invitation_not_found", title="Invitation not found"): ...


class NotAllowed(Forbidden, code="forbidden"): ...


class EmailMismatch(
    Forbidden, code="email_mismatch", title="Invitation is for another email address"
): ...


class SlugTaken(Conflict, code="slug_taken", title="Slug already taken"): ...


class AlreadyMember(Conflict, code="already_member", title="Already a member"): ...


class LastOwner(
    Conflict,
    code="last_owner",
    title="An organization needs an owner",
    detail="The organization would be left without an owner.",
): ...


class InvitationAlreadyAccepted(
    Conflict, code="invitation_accepted", title="Invitation already accepted"
): ...


class InvitationExpired(Gone, code="invitation_expired", title="Invitation expired"): ...


class InvitationRevoked(Gone, code="invitation_revoked", title="Invitation revoked"): ...


class InvitationUsed(Gone, code="invitation_used", title="Invitation already used"): ...


class WebhookNotFound(NotFound, code="webhook_not_found", title="Webhook not found"): ...


class WebhookUrlRefused(
    ProblemError, status=422, code="webhook_url_refused", title="Webhook URL refused"
):
    """The URL is not http(s), cannot be resolved, or resolves to a private, loopback,
    link-local or reserved address (ORGS_WEBHOOKS_ALLOW_PRIVATE)."""
