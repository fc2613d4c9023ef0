"""An SMPP carrier's settings (operator configuration) and credentials (kept encrypted)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

#: TON/NPI values (SMPP 3.4, 5.2.5 and 5.2.6).
TON_INTERNATIONAL, TON_NETWORK_SPECIFIC, TON_ALPHANUMERIC = 1, 3, 5
NPI_UNKNOWN, NPI_ISDN = 0, 1


class SmppOptions(BaseModel):
    """How to reach and use one SMSC. Times are in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=2775, ge=1, le=65535)
    tls: bool = False
    #: PEM file of the CA(s) that sign the SMSC's certificate; the system's store when unset.
    ca_bundle: Path | None = None
    #: One transceiver per bind, or transmitters for submits and receivers for receipts and MO.
    bind_mode: Literal["transceiver", "transmitter_receiver"] = "transceiver"
    #: Transceivers (or transmitters) to keep bound.
    binds: int = Field(default=1, ge=1, le=32)
    #: Receivers to keep bound in ``transmitter_receiver`` mode.
    receivers: int = Field(default=1, ge=1, le=32)
    #: PDUs in flight per bind, awaiting their response.
    window: int = Field(default=10, ge=1, le=1000)
    #: Messages (submit_sm PDUs) per second across all binds and worker processes; None: no cap.
    throughput: float | None = Field(default=None, gt=0, le=100_000)
    enquire_link_interval: float = Field(default=30.0, gt=0, le=3600)
    #: Longest wait for any response (bind, submit_sm, enquire_link) before the bind is dropped.
    response_timeout: float = Field(default=10.0, gt=0, le=300)
    connect_timeout: float = Field(default=10.0, gt=0, le=300)
    #: Reconnect backoff: full jitter between 0 and min(max, first * 2**attempt).
    reconnect_first: float = Field(default=1.0, gt=0, le=600)
    reconnect_max: float = Field(default=60.0, gt=0, le=3600)
    #: How long a submit waits for a bind when none is up, before it is handed back.
    bind_wait: float = Field(default=5.0, ge=0, le=300)
    system_type: str = Field(default="", max_length=12)
    service_type: str = Field(default="", max_length=5)
    #: Source TON/NPI; by default chosen from the sender (alphanumeric 5/0, short code 3/0,
    #: international number 1/1).
    source_ton: int | None = Field(default=None, ge=0, le=255)
    source_npi: int | None = Field(default=None, ge=0, le=255)
    dest_ton: int = Field(default=TON_INTERNATIONAL, ge=0, le=255)
    dest_npi: int = Field(default=NPI_ISDN, ge=0, le=255)
    #: Used when a message has no sender of its own.
    default_sender: str | None = Field(default=None, max_length=20)
    #: How a message longer than one part travels: UDH concatenation (8-bit reference),
    #: ``sar_*`` TLVs, or the whole text in one ``message_payload`` TLV.
    long_messages: Literal["udh", "sar", "payload"] = "udh"
    #: registered_delivery of a submit that wants a receipt (1: final receipt, success or failure).
    registered_delivery: int = Field(default=1, ge=0, le=0x1F)
    #: data_coding for GSM-7 text (0: SMSC default alphabet) and for UCS-2 text.
    gsm7_data_coding: int = Field(default=0x00, ge=0, le=255)
    ucs2_data_coding: int = Field(default=0x08, ge=0, le=255)
    #: What data_coding 0 means in receipts and MO messages from this SMSC.
    default_alphabet: Literal["gsm7", "latin1", "ascii"] = "gsm7"
    #: How long the acknowledgement of one part of a concatenated MO message is held back while
    #: its other parts arrive (the whole message is stored before all its parts are
    #: acknowledged; past this, a part is acknowledged while only held in memory).
    mo_part_hold: float = Field(default=5.0, ge=0, le=60)
    #: Parts of an MO message still incomplete after this long are dropped.
    mo_reassembly_timeout: float = Field(default=600.0, gt=0, le=86400)
    #: Retries of a later part of a long message that the SMSC throttles, before the message
    #: is reported failed (its first parts already went out, so it is not retried whole).
    part_retries: int = Field(default=5, ge=0, le=100)

    @model_validator(mode="after")
    def _check(self) -> SmppOptions:
        if self.reconnect_max < self.reconnect_first:
            raise ValueError("reconnect_max must be at least reconnect_first")
        if self.ca_bundle is not None and not self.tls:
            raise ValueError("ca_bundle needs tls")
        return self


class SmppCredentials(BaseModel):
    """The bind's system_id and password (SMPP limits: 15 and 8 characters)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system_id: str = Field(min_length=1, max_length=15, repr=False)
    password: SecretStr = Field(max_length=8, repr=False)
