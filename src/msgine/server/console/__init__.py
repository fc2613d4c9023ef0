"""The console: a web dashboard at ``/console`` for the people who run an account's SMS.

Server-rendered pages (Jinja2, autoescaped) with a little JavaScript from the package; users
with roles sign in with a password and TOTP; sessions live on the server. See docs/console.md
for the roles table and the security properties, and ``_web`` for what a page module uses.
"""

from msgine.server.console._app import ROUTES, install
from msgine.server.console._masking import mask_phone, register_revealer, revealable_kinds
from msgine.server.console._roles import PERMISSIONS, ROLES, allowed
from msgine.server.console._users import (
    NewUser,
    create_user,
    disable_user,
    find_user,
    finish_enrolment,
    get_user,
    list_users,
    pending_secret,
    reset_two_factor,
)
from msgine.server.console._web import (
    BASE,
    NAV,
    ConsoleUser,
    Refused,
    actor,
    render,
    require,
    runtime_of,
)

__all__ = [
    "BASE",
    "NAV",
    "PERMISSIONS",
    "ROLES",
    "ROUTES",
    "ConsoleUser",
    "NewUser",
    "Refused",
    "actor",
    "allowed",
    "create_user",
    "disable_user",
    "find_user",
    "finish_enrolment",
    "get_user",
    "install",
    "list_users",
    "mask_phone",
    "pending_secret",
    "register_revealer",
    "render",
    "require",
    "reset_two_factor",
    "revealable_kinds",
    "runtime_of",
]
