"""Roles and what each may do: the one table the console enforces (docs/console.md shows it).

Every console route names the permission it needs (``require(permission)`` in ``_web``); this
table alone decides which roles hold it, so no page carries its own role check.
"""

from __future__ import annotations

from typing import Literal

Role = Literal["owner", "developer", "viewer"]
ROLES: tuple[Role, ...] = ("owner", "developer", "viewer")

_EVERYONE: frozenset[Role] = frozenset(ROLES)
_BUILDERS: frozenset[Role] = frozenset({"owner", "developer"})

#: permission -> the roles that hold it, with what it covers (the docs' roles table).
PERMISSIONS: dict[str, tuple[frozenset[Role], str]] = {
    "console:view": (_EVERYONE, "see every page; numbers masked; own sessions"),
    "audit:read": (_EVERYONE, "read the audit log and its chain's state"),
    "numbers:reveal": (_BUILDERS, "reveal one phone number at a time (audited)"),
    "keys:manage": (_BUILDERS, "create, rotate, revoke and mark API keys compromised"),
    "webhooks:manage": (_BUILDERS, "add and change endpoints, replay, rotate secrets, test"),
    "compliance:manage": (frozenset({"owner"}), "change consents, suppressions and policy"),
}


def allowed(role: str, permission: str) -> bool:
    """Whether ``role`` holds ``permission``; an unknown permission is held by no one."""
    holders = PERMISSIONS.get(permission)
    return holders is not None and role in holders[0]


def parse_role(text: str) -> Role:
    for role in ROLES:
        if text == role:
            return role
    raise ValueError(f"unknown role {text!r}; roles: {', '.join(ROLES)}")
