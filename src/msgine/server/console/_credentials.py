"""Passwords (argon2id), TOTP codes (RFC 6238) and recovery codes: pure functions, no storage.

argon2-cffi's defaults are argon2id with RFC 9106's low-memory profile (64 MiB, 3 passes);
a sign-in costs tens of milliseconds, which the per-user and per-address lock-outs bound.
A TOTP code is accepted for the step before and after the current one (clock drift), and never
for a step at or before the last one accepted, so an overheard code cannot be replayed.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from functools import cache

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from markupsafe import Markup

MIN_PASSWORD = 12
MAX_PASSWORD = 256  # hashing cost grows with length: refuse novels
TOTP_STEP = 30
TOTP_DRIFT = 1  # steps either side of now
RECOVERY_CODES = 10
ISSUER = "MsGine"
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


def password_problem(password: str, email: str) -> str | None:
    """Why ``password`` is not acceptable, or None."""
    if len(password) < MIN_PASSWORD:
        return f"The password must be at least {MIN_PASSWORD} characters."
    if len(password) > MAX_PASSWORD:
        return f"The password must be at most {MAX_PASSWORD} characters."
    if password.strip().lower() == email.strip().lower():
        return "The password must not be the e-mail address."
    return None


def hash_password(password: str) -> str:
    return _hasher().hash(password)


@cache
def _dummy_hash() -> str:
    return _hasher().hash(secrets.token_urlsafe(16))


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches; with no stored hash (no such user) the same work is done,
    so the answer's timing does not tell which addresses have users."""
    if len(password) > MAX_PASSWORD:
        return False
    try:
        return _hasher().verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def new_password() -> str:
    """A one-time password for the operator to hand over (about 120 bits)."""
    return secrets.token_urlsafe(15)


def new_totp_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def qr_svg(uri: str) -> Markup:
    """The enrolment QR code as inline SVG (drawn here: no image service, no inline style)."""
    svg = segno.make(uri, error="m").svg_inline(scale=5, border=4, dark="#000")
    # segno writes the markup itself; the URI's text is encoded into the drawing, not copied.
    return Markup(svg)  # noqa: S704


def totp_step(secret: str, code: str, now: datetime, last_step: int | None) -> int | None:
    """The time step ``code`` is valid for (within the drift), if later than ``last_step``."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // TOTP_STEP
    found = None
    for step in range(current - TOTP_DRIFT, current + TOTP_DRIFT + 1):
        # Every candidate is compared, in constant time, whichever matches.
        if hmac.compare_digest(totp.at(step * TOTP_STEP), code) and found is None:
            found = step
    if found is None or (last_step is not None and found <= last_step):
        return None
    return found


def new_recovery_codes() -> list[str]:
    """Ten single-use codes of 10 characters (about 49 bits each), shown once."""
    return [
        "-".join("".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(5)) for _ in range(2))
        for _ in range(RECOVERY_CODES)
    ]


def normal_recovery_code(code: str) -> str:
    text = "".join(ch for ch in code.lower() if ch.isalnum())
    return f"{text[:5]}-{text[5:]}"
