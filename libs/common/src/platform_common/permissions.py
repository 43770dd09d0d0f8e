"""The one role-to-permission table of the platform.

An organization member's role grants a fixed set of permissions. auth writes them into
org-scoped access tokens (`permissions` claim), orgs checks them on its endpoints, and any
other service of the platform checks them with `platform_common.security.require_permission`.
Nothing else defines what a role may do.

```
role     org:read org:update org:delete members:read members:write invitations:write
         webhooks:write audit:read
owner    every permission
admin    every permission but org:delete
member   org:read members:read
viewer   org:read members:read
```

Personal access tokens (`ipt_...`) may be narrowed to a subset of `PAT_SCOPES`: these
permissions (what the token may do in the owner's orgs, never beyond the owner's role) plus
the user-level `profile:read`, `profile:write` (users: the own profile, lookups),
`orgs:create` and `orgs:join` (creating an org, accepting an invitation) and
`platform:admin` (a platform admin's operations, for an admin's token).
"""

from __future__ import annotations

from typing import Final

ORG_ROLES: Final = ("owner", "admin", "member", "viewer")  # highest first

PERMISSIONS: Final = (
    "org:read",
    "org:update",
    "org:delete",
    "members:read",
    "members:write",
    "invitations:write",
    "webhooks:write",
    "audit:read",
)

_READ: Final = frozenset({"org:read", "members:read"})

ROLE_PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    "owner": frozenset(PERMISSIONS),
    "admin": frozenset(PERMISSIONS) - {"org:delete"},
    "member": _READ,
    "viewer": _READ,
}

# What a personal access token may be narrowed to (no scopes: the owner's full rights, but
# never the account's own security: platform_common.security.CurrentSessionUser).
ADMIN_SCOPE: Final = "platform:admin"  # a platform admin's PAT, for the admin operations
USER_SCOPES: Final = ("profile:read", "profile:write", "orgs:create", "orgs:join", ADMIN_SCOPE)
PAT_SCOPES: Final = USER_SCOPES + PERMISSIONS
# What no org-scoped token may do: it acts within its one org.
OUTSIDE_ANY_ORG: Final = frozenset({"orgs:create", "orgs:join"})


def permissions_for(role: str) -> frozenset[str]:
    """The permissions of an org role; none for an unknown role."""
    return ROLE_PERMISSIONS.get(role, frozenset())
