"""Which stored lookup tokens name one person, and the token that names nobody."""

from __future__ import annotations

from msgine.server.crypto import Vault

#: Replaces a blind index when erasure or retention removes the link between a row and a number.
#: Never a valid index (those are 32 hex digits), so no lookup by number can match it.
UNLINKED = "unlinked"


def subject_indexes(vault: Vault, account_id: str, e164: str) -> list[str]:
    """Every token that names ``e164`` in this account's rows (today: its blind index)."""
    return [vault.blind_index(account_id, e164)]
