"""SMPP command statuses and what each one means for a message: the one table.

docs/carriers-smpp.md shows the same table; a test checks the two agree.

Outcomes:
- ``retry``: the SMSC is busy; the message waits (backing off) and is submitted again here.
- ``failover``: this carrier will not take this message (its sender, its options), so the
  route's next carrier should; with none left it fails.
- ``retry_failover``: this carrier is in trouble (system error, bind state); the next carrier
  takes the message, or, with none, it is retried here later.
- ``fail``: the message itself is wrong for any carrier (invalid destination): it fails for good.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["retry", "failover", "retry_failover", "fail"]


@dataclass(frozen=True)
class CommandStatus:
    code: int
    name: str
    outcome: Outcome
    #: Our error code on the recipient (the SubmitResult's ``error_code``).
    error_code: str


_TABLE: tuple[tuple[int, str, Outcome, str], ...] = (
    # code, name, outcome, our error code
    (0x01, "ESME_RINVMSGLEN", "fail", "invalid_message"),
    (0x02, "ESME_RINVCMDLEN", "retry_failover", "carrier_error"),
    (0x03, "ESME_RINVCMDID", "failover", "carrier_refused"),
    (0x04, "ESME_RINVBNDSTS", "retry_failover", "carrier_unbound"),
    (0x05, "ESME_RALYBND", "retry_failover", "carrier_unbound"),
    (0x06, "ESME_RINVPRTFLG", "failover", "carrier_refused"),
    (0x07, "ESME_RINVREGDLVFLG", "failover", "carrier_refused"),
    (0x08, "ESME_RSYSERR", "retry_failover", "carrier_error"),
    (0x0A, "ESME_RINVSRCADR", "failover", "invalid_sender"),
    (0x0B, "ESME_RINVDSTADR", "fail", "invalid_destination"),
    (0x0C, "ESME_RINVMSGID", "fail", "invalid_message"),
    (0x0D, "ESME_RBINDFAIL", "retry_failover", "carrier_unbound"),
    (0x0E, "ESME_RINVPASWD", "retry_failover", "carrier_unbound"),
    (0x0F, "ESME_RINVSYSID", "retry_failover", "carrier_unbound"),
    (0x14, "ESME_RMSGQFUL", "retry", "queue_full"),
    (0x15, "ESME_RINVSERTYP", "failover", "carrier_refused"),
    (0x33, "ESME_RINVNUMDESTS", "fail", "invalid_destination"),
    (0x40, "ESME_RINVDESTFLAG", "fail", "invalid_destination"),
    (0x43, "ESME_RINVESMCLASS", "failover", "carrier_refused"),
    (0x45, "ESME_RSUBMITFAIL", "retry_failover", "carrier_error"),
    (0x48, "ESME_RINVSRCTON", "failover", "invalid_sender"),
    (0x49, "ESME_RINVSRCNPI", "failover", "invalid_sender"),
    (0x50, "ESME_RINVDSTTON", "fail", "invalid_destination"),
    (0x51, "ESME_RINVDSTNPI", "fail", "invalid_destination"),
    (0x53, "ESME_RINVSYSTYP", "retry_failover", "carrier_unbound"),
    (0x58, "ESME_RTHROTTLED", "retry", "throttled"),
    (0x61, "ESME_RINVSCHED", "failover", "carrier_refused"),
    (0x62, "ESME_RINVEXPIRY", "failover", "carrier_refused"),
    (0x63, "ESME_RINVDFTMSGID", "failover", "carrier_refused"),
    (0x64, "ESME_RX_T_APPN", "retry", "carrier_busy"),
    (0x65, "ESME_RX_P_APPN", "fail", "rejected"),
    (0x66, "ESME_RX_R_APPN", "fail", "rejected"),
    (0xC0, "ESME_RINVOPTPARSTREAM", "failover", "carrier_refused"),
    (0xC1, "ESME_ROPTPARNOTALLWD", "failover", "carrier_refused"),
    (0xC2, "ESME_RINVPARLEN", "failover", "carrier_refused"),
    (0xC3, "ESME_RMISSINGOPTPARAM", "failover", "carrier_refused"),
    (0xC4, "ESME_RINVOPTPARAMVAL", "failover", "carrier_refused"),
    (0xFE, "ESME_RDELIVERYFAILURE", "fail", "undeliverable"),
    (0xFF, "ESME_RUNKNOWNERR", "retry_failover", "carrier_error"),
)

COMMAND_STATUSES: dict[int, CommandStatus] = {
    code: CommandStatus(code, name, outcome, error) for code, name, outcome, error in _TABLE
}
ESME_ROK = 0x00
BY_NAME = {status.name: status for status in COMMAND_STATUSES.values()}


def command_status(code: int) -> CommandStatus:
    """The table's entry; a status it does not list (vendor-specific, 0x400-0x4FF) is treated
    as a carrier error: the next carrier takes the message, or it is retried here later."""
    known = COMMAND_STATUSES.get(code)
    if known is not None:
        return known
    return CommandStatus(code, f"0x{code:08X}", "retry_failover", "carrier_error")
