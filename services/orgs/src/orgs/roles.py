"""Organization roles, their order (owner > admin > member > viewer) and the rules between
them: nobody grants a role above their own, and only an owner grants or touches `owner`.
"""

from __future__ import annotations

from enum import StrEnum

from orgs.errors import NotAllowed


class OrgRole(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: OrgRole) -> bool:
        return self.rank >= other.rank


_RANK = {OrgRole.VIEWER: 0, OrgRole.MEMBER: 1, OrgRole.ADMIN: 2, OrgRole.OWNER: 3}

ROLE_VALUES = tuple(role.value for role in OrgRole)


def check_grant(actor: OrgRole, role: OrgRole) -> None:
    if role == OrgRole.OWNER and actor != OrgRole.OWNER:
        raise NotAllowed("Only an owner can grant the owner role.")
    if role.rank > actor.rank:
        raise NotAllowed("You cannot grant a role above your own.")


def _check_manage(actor: OrgRole, target: OrgRole) -> None:
    if target == OrgRole.OWNER and actor != OrgRole.OWNER:
        raise NotAllowed("Only an owner can change or remove an owner.")
    if target.rank > actor.rank:
        raise NotAllowed("You cannot change a member whose role is above your own.")


def authorize_change(actor: OrgRole, target: OrgRole, role: OrgRole) -> None:
    if not actor.at_least(OrgRole.ADMIN):
        raise NotAllowed("Only an admin or owner can change roles.")
    _check_manage(actor, target)
    check_grant(actor, role)


def authorize_removal(actor: OrgRole, target: OrgRole) -> None:
    if not actor.at_least(OrgRole.ADMIN):
        raise NotAllowed("Only an admin or owner can remove other members.")
    _check_manage(actor, target)
