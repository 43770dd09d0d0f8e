"""orgs' rules: who may do what to an organization, its members and its invitations.

```
caller --slug--> OrgAccess(org, caller's role)          404 for non-members (never 403)
              -> effective role: the membership role, or owner for a platform admin
              -> per action: minimum role (403), "no granting above your own role",
                 "only an owner touches owners", "never zero owners" (409 last_owner)
```

One service per resource: `OrganizationService` (organizations.py) resolves slugs to
`OrgAccess` and creates, lists, renames and deletes orgs; `MemberService` (members.py)
lists, adds, re-roles and removes members, with names from the users service;
`InvitationService` (invitations.py) issues, lists, revokes and accepts invitations;
`AccountDeletionService` (account_deletion.py) carries out an account's deletion at auth.

What must hold under concurrency is enforced by the database: the unique (org, user)
constraint makes one of two simultaneous adds fail (409 already_member); changes that can
remove an owner lock the org row first and then re-read the caller's and the target's
roles and count the owners, so two owners demoting each other at once run one after the
other and the second is refused. Accepting an invitation is one conditional UPDATE.

Services never commit: the request's session dependency commits when the handler returns
and rolls back when it raises.
"""

from orgs.service.account_deletion import AccountDeletionService, refuse_deleted_account
from orgs.service.invitations import InvitationIssued, InvitationService
from orgs.service.members import MemberService, MemberView, MemberViews
from orgs.service.organizations import (
    OrgAccess,
    OrganizationService,
    OrganizationViews,
    OrgView,
    ReadAccess,
)

__all__ = [
    "AccountDeletionService",
    "InvitationIssued",
    "InvitationService",
    "MemberService",
    "MemberView",
    "MemberViews",
    "OrgAccess",
    "OrgView",
    "OrganizationService",
    "OrganizationViews",
    "ReadAccess",
    "refuse_deleted_account",
]
