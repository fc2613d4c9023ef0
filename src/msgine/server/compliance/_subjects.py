"""Which stored lookup tokens name one person, and the token that names nobody.

Rows holding a number carry its keyed blind index. System replies to a number (an opt-out
confirmation, a help answer) are filed under a second keyed token derived from the same number,
so the suppression check, which looks up the blind index, does not stop the one confirmation an
opt-out must send. Export and erasure look up both tokens, so nothing about a person is missed.
"""

from __future__ import annotations

from msgine.server.crypto import Vault

#: Replaces a blind index when erasure or retention removes the link between a row and a number.
#: Never a valid index (those are 32 hex digits), so no lookup by number can match it.
UNLINKED = "unlinked"
_REPLY_PREFIX = "reply\x00"


def reply_index(vault: Vault, account_id: str, e164: str) -> str:
    """The token under which system replies to ``e164`` are filed."""
    return vault.blind_index(account_id, _REPLY_PREFIX + e164)


def subject_indexes(vault: Vault, account_id: str, e164: str) -> list[str]:
    """Every token that names ``e164`` in this account: its blind index, then its reply token."""
    return [vault.blind_index(account_id, e164), reply_index(vault, account_id, e164)]
