"""Carriers and routes as operator configuration: stored, validated, audited.

Credentials are validated by the kind's model, then stored only as envelope-encrypted JSON bound
to the carrier's row; views never include them (only whether they are set and their field
names). Every change writes an audit entry in the same transaction, naming the carrier or route
by id and name and the fields that changed, never a value of a credential.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import phonenumbers
import sqlalchemy as sa
from pydantic import BaseModel

from msgine.server._ids import new_id
from msgine.server.accounts import find_account
from msgine.server.audit import Actor, record
from msgine.server.carriers._callbacks import new_callback_token
from msgine.server.carriers._registry import (
    SIMULATOR,
    dump_secret_model,
    get_kind,
    parse_credentials,
    parse_options,
)
from msgine.server.crypto import Vault
from msgine.server.errors import InvalidRequest, NotFound
from msgine.server.storage._tables import carriers, routes

UncertainPolicy = Literal["mark_unknown", "resubmit"]
UNCERTAIN_POLICIES: tuple[str, ...] = ("mark_unknown", "resubmit")
DEFAULT_RETRY_BUDGET = 3
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_PREFIX = re.compile(r"^\d{1,15}$")


@dataclass(frozen=True)
class CarrierConfig:
    """One stored carrier, credentials decrypted: built into a connector by the worker."""

    id: str
    name: str
    kind: str
    enabled: bool
    options: dict[str, Any]
    credentials: dict[str, Any] | None = field(repr=False)
    on_uncertain_submit: str
    retry_budget: int
    inbound_account_id: str | None
    updated_at: datetime
    callback_token: str | None = field(default=None, repr=False)


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidRequest(
            "A carrier name is 1 to 64 lowercase letters, digits, '-' or '_'.",
            details={"field": "name"},
        )
    if name == SIMULATOR:
        raise InvalidRequest(
            f"{SIMULATOR!r} is the built-in simulator's name; choose another.",
            details={"field": "name"},
        )
    return name


def _check_policy(policy: str) -> str:
    if policy not in UNCERTAIN_POLICIES:
        raise InvalidRequest(
            "on_uncertain_submit is mark_unknown or resubmit.",
            details={"field": "on_uncertain_submit"},
        )
    return policy


def _check_budget(budget: int) -> int:
    if not 1 <= budget <= 20:
        raise InvalidRequest("retry_budget is 1 to 20 attempts.", details={"field": "retry_budget"})
    return budget


def _check_account(conn: sa.Connection, account: str | None) -> str | None:
    """An account id or name, as its id."""
    return None if account is None else str(find_account(conn, account)["id"])


def _seal(vault: Vault, carrier_id: str, model: BaseModel | None) -> bytes | None:
    if model is None:
        return None
    plain = json.dumps(dump_secret_model(model), separators=(",", ":")).encode()
    return vault.encrypt(plain, table="carriers", column="credentials", row_id=carrier_id)


def _open(vault: Vault, row: Mapping[Any, Any]) -> dict[str, Any] | None:
    blob = row["credentials"]
    if blob is None:
        return None
    plain = vault.decrypt(blob, table="carriers", column="credentials", row_id=row["id"])
    loaded: dict[str, Any] = json.loads(plain)
    return loaded


def _seal_token(vault: Vault, carrier_id: str, token: str) -> bytes:
    return vault.encrypt(
        token.encode(), table="carriers", column="callback_token", row_id=carrier_id
    )


def _open_token(vault: Vault, row: Mapping[Any, Any]) -> str | None:
    blob = row.get("callback_token")
    if blob is None:
        return None
    return vault.decrypt(blob, table="carriers", column="callback_token", row_id=row["id"]).decode()


def _row(conn: sa.Connection, name: str) -> dict[str, Any]:
    row = conn.execute(sa.select(carriers).where(carriers.c.name == name)).mappings().first()
    if row is None:
        raise NotFound("Carrier not found.", details={"carrier": name})
    return dict(row)


def carrier_view(row: Mapping[Any, Any], vault: Vault | None = None) -> dict[str, Any]:
    """What operators see of a carrier: never a credential, only whether one is set."""
    credential_fields: list[str] = []
    if row["credentials"] is not None and vault is not None:
        credential_fields = sorted(_open(vault, row) or {})
    return {
        "id": row["id"],
        "name": row["name"],
        "kind": row["kind"],
        "enabled": row["enabled"],
        "options": row["options"],
        "credentials": {"set": row["credentials"] is not None, "fields": credential_fields},
        "callbacks": row.get("callback_token") is not None,
        "onUncertainSubmit": row["on_uncertain_submit"],
        "retryBudget": row["retry_budget"],
        "inboundAccount": row["inbound_account_id"],
        "createdAt": row["created_at"].isoformat(),
        "updatedAt": row["updated_at"].isoformat(),
    }


def add_carrier(
    conn: sa.Connection,
    vault: Vault,
    *,
    name: str,
    kind: str,
    options: dict[str, Any],
    credentials: dict[str, Any] | None,
    now: datetime,
    actor: Actor,
    enabled: bool = True,
    on_uncertain_submit: str = "mark_unknown",
    retry_budget: int = DEFAULT_RETRY_BUDGET,
    inbound_account_id: str | None = None,
) -> dict[str, Any]:
    _check_name(name)
    found = get_kind(kind)
    opts = parse_options(found, options)
    creds = parse_credentials(found, credentials)
    if conn.execute(sa.select(carriers.c.id).where(carriers.c.name == name)).first():
        raise InvalidRequest("A carrier with this name exists.", details={"carrier": name})
    carrier_id = new_id("car")
    token = new_callback_token() if found.callbacks is not None else None
    row = {
        "id": carrier_id,
        "name": name,
        "kind": kind,
        "enabled": enabled,
        "options": opts.model_dump(mode="json"),
        "credentials": _seal(vault, carrier_id, creds),
        "on_uncertain_submit": _check_policy(on_uncertain_submit),
        "retry_budget": _check_budget(retry_budget),
        "inbound_account_id": _check_account(conn, inbound_account_id),
        "created_at": now,
        "updated_at": now,
        "callback_token": _seal_token(vault, carrier_id, token) if token else None,
    }
    conn.execute(sa.insert(carriers).values(**row))
    record(
        conn,
        vault,
        actor,
        "carrier.created",
        now=now,
        target=carrier_id,
        details={"name": name, "kind": kind, "credentials": creds is not None},
    )
    view = carrier_view(row, vault)
    if token is not None:
        view["callbackToken"] = token  # shown once, to build the URL the provider calls
    return view


def rotate_callback_token(
    conn: sa.Connection, vault: Vault, name: str, *, now: datetime, actor: Actor
) -> dict[str, Any]:
    """A new callback token for a carrier whose kind takes callbacks: the old URL stops
    working at once. Returns the view with the token (shown once)."""
    row = _row(conn, name)
    if get_kind(row["kind"]).callbacks is None:
        raise InvalidRequest(
            f"Carrier kind {row['kind']!r} takes no callbacks.", details={"carrier": name}
        )
    token = new_callback_token()
    values = {"callback_token": _seal_token(vault, row["id"], token)}
    view = _write_changes(conn, vault, row, values, now=now, actor=actor)
    return {**view, "callbackToken": token}


def _write_changes(
    conn: sa.Connection,
    vault: Vault,
    row: dict[str, Any],
    values: dict[str, Any],
    *,
    now: datetime,
    actor: Actor,
) -> dict[str, Any]:
    """Store changed columns and audit them by name (never a value); the new view."""
    changed = sorted(values)
    values = {**values, "updated_at": now}
    conn.execute(sa.update(carriers).where(carriers.c.id == row["id"]).values(**values))
    record(
        conn,
        vault,
        actor,
        "carrier.updated",
        now=now,
        target=row["id"],
        details={"name": row["name"], "changed": changed},
    )
    return carrier_view({**row, **values}, vault)


def update_carrier(
    conn: sa.Connection,
    vault: Vault,
    name: str,
    *,
    now: datetime,
    actor: Actor,
    options: dict[str, Any] | None = None,
    credentials: dict[str, Any] | None = None,
    enabled: bool | None = None,
    on_uncertain_submit: str | None = None,
    retry_budget: int | None = None,
    inbound_account_id: str | None = None,
) -> dict[str, Any]:
    """Change some settings: ``options`` are merged over the stored ones, ``credentials``
    replace the stored ones whole. The audit entry names the changed fields only."""
    row = _row(conn, name)
    kind = get_kind(row["kind"])
    values: dict[str, Any] = {}
    if options:
        merged = {**row["options"], **options}
        values["options"] = parse_options(kind, merged).model_dump(mode="json")
    if credentials is not None:
        values["credentials"] = _seal(vault, row["id"], parse_credentials(kind, credentials))
    if enabled is not None:
        values["enabled"] = enabled
    if on_uncertain_submit is not None:
        values["on_uncertain_submit"] = _check_policy(on_uncertain_submit)
    if retry_budget is not None:
        values["retry_budget"] = _check_budget(retry_budget)
    if inbound_account_id is not None:
        values["inbound_account_id"] = _check_account(conn, inbound_account_id)
    if not values:
        raise InvalidRequest("Nothing to change.")
    return _write_changes(conn, vault, row, values, now=now, actor=actor)


def remove_carrier(
    conn: sa.Connection, vault: Vault, name: str, *, now: datetime, actor: Actor
) -> None:
    """Delete a carrier no route uses (a route would otherwise point at nothing)."""
    row = _row(conn, name)
    using = [r["id"] for r in _route_rows(conn) if name in r["carriers"]]
    if using:
        raise InvalidRequest(
            "Routes still use this carrier; remove them or take the carrier out first.",
            details={"routes": using},
        )
    conn.execute(sa.delete(carriers).where(carriers.c.id == row["id"]))
    record(
        conn,
        vault,
        actor,
        "carrier.removed",
        now=now,
        target=row["id"],
        details={"name": name, "kind": row["kind"]},
    )


def list_carriers(conn: sa.Connection, vault: Vault) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(carriers).order_by(carriers.c.name)).mappings()
    return [carrier_view(r, vault) for r in rows]


def get_carrier(conn: sa.Connection, vault: Vault, name: str) -> dict[str, Any]:
    return carrier_view(_row(conn, name), vault)


@dataclass(frozen=True)
class CallbackTarget:
    """What a callback request needs of its carrier (credentials decrypted, in memory)."""

    kind: str
    options: dict[str, Any]
    credentials: dict[str, Any] | None = field(repr=False)
    token: str | None = field(repr=False)


def callback_target(conn: sa.Connection, vault: Vault, name: str) -> CallbackTarget | None:
    row = conn.execute(sa.select(carriers).where(carriers.c.name == name)).mappings().first()
    if row is None:
        return None
    return CallbackTarget(row["kind"], row["options"], _open(vault, row), _open_token(vault, row))


def load_carrier_configs(conn: sa.Connection, vault: Vault) -> list[CarrierConfig]:
    """Every stored carrier with its credentials decrypted (for the worker, in memory only)."""
    out = []
    for row in conn.execute(sa.select(carriers).order_by(carriers.c.name)).mappings():
        out.append(
            CarrierConfig(
                id=row["id"],
                name=row["name"],
                kind=row["kind"],
                enabled=row["enabled"],
                options=row["options"],
                credentials=_open(vault, row),
                on_uncertain_submit=row["on_uncertain_submit"],
                retry_budget=row["retry_budget"],
                inbound_account_id=row["inbound_account_id"],
                updated_at=row["updated_at"],
                callback_token=_open_token(vault, row),
            )
        )
    return out


# --- routes -------------------------------------------------------------------------------


def _route_rows(conn: sa.Connection) -> list[dict[str, Any]]:
    query = sa.select(routes).order_by(routes.c.created_at, routes.c.id)
    return [dict(r) for r in conn.execute(query).mappings()]


def route_view(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "account": row["account_id"],
        "prefix": row["prefix"],
        "country": row["country"],
        "carriers": list(row["carriers"]),
        "pricePerSegment": row["price_per_segment"],
        "currency": row["currency"],
        "createdAt": row["created_at"].isoformat(),
        "updatedAt": row["updated_at"].isoformat(),
    }


def normalize_destination(prefix: str | None, country: str | None) -> tuple[str | None, str | None]:
    """Exactly one of a prefix (E.164 digits, a leading + allowed) or an ISO country code."""
    if (prefix is None) == (country is None):
        raise InvalidRequest(
            "A route matches a destination prefix or a country: give exactly one.",
            details={"field": "prefix"},
        )
    if prefix is not None:
        digits = prefix.strip().removeprefix("+")
        if not _PREFIX.match(digits):
            raise InvalidRequest(
                "A prefix is 1 to 15 digits of an E.164 number (e.g. 256 or +25670).",
                details={"field": "prefix"},
            )
        return digits, None
    assert country is not None
    code = country.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidRequest(
            "A country is an ISO 3166 alpha-2 code with a numbering plan (e.g. UG, KE).",
            details={"field": "country"},
        )
    return None, code


def add_route(
    conn: sa.Connection,
    vault: Vault,
    *,
    carrier_names: list[str],
    price_per_segment: int,
    currency: str,
    now: datetime,
    actor: Actor,
    prefix: str | None = None,
    country: str | None = None,
    account_id: str | None = None,
) -> dict[str, Any]:
    digits, code = normalize_destination(prefix, country)
    if not carrier_names or len(set(carrier_names)) != len(carrier_names):
        raise InvalidRequest(
            "A route lists one or more distinct carriers, in order.", details={"field": "carriers"}
        )
    known = set(conn.execute(sa.select(carriers.c.name)).scalars())
    missing = [n for n in carrier_names if n not in known and n != SIMULATOR]
    if missing:
        raise NotFound("No carrier has this name.", details={"carriers": missing})
    if price_per_segment < 0:
        raise InvalidRequest("A price is zero or more.", details={"field": "price"})
    money = currency.strip().upper()
    if not (len(money) == 3 and money.isalpha()):
        raise InvalidRequest(
            "A currency is a 3-letter ISO 4217 code.", details={"field": "currency"}
        )
    account_id = _check_account(conn, account_id)
    for other in _route_rows(conn):
        if (other["account_id"], other["prefix"], other["country"]) == (account_id, digits, code):
            raise InvalidRequest(
                "A route for this destination exists; remove it first.",
                details={"route": other["id"]},
            )
    route_id = new_id("rte")
    row = {
        "id": route_id,
        "account_id": account_id,
        "prefix": digits,
        "country": code,
        "carriers": carrier_names,
        "price_per_segment": price_per_segment,
        "currency": money,
        "created_at": now,
        "updated_at": now,
    }
    conn.execute(sa.insert(routes).values(**row))
    record(
        conn,
        vault,
        actor,
        "route.created",
        now=now,
        target=route_id,
        account_id=account_id,
        details={
            "prefix": digits,
            "country": code,
            "carriers": carrier_names,
            "pricePerSegment": price_per_segment,
            "currency": money,
        },
    )
    return route_view(row)


def _route(conn: sa.Connection, route_id: str) -> dict[str, Any]:
    row = conn.execute(sa.select(routes).where(routes.c.id == route_id)).mappings().first()
    if row is None:
        raise NotFound("Route not found.", details={"route": route_id})
    return dict(row)


def remove_route(
    conn: sa.Connection, vault: Vault, route_id: str, *, now: datetime, actor: Actor
) -> None:
    row = _route(conn, route_id)
    conn.execute(sa.delete(routes).where(routes.c.id == route_id))
    record(
        conn,
        vault,
        actor,
        "route.removed",
        now=now,
        target=route_id,
        account_id=row["account_id"],
        details={"prefix": row["prefix"], "country": row["country"]},
    )


def list_routes(conn: sa.Connection, account_id: str | None = None) -> list[dict[str, Any]]:
    rows = _route_rows(conn)
    if account_id is not None:
        rows = [r for r in rows if r["account_id"] in (None, account_id)]
    return [route_view(r) for r in rows]


def get_route(conn: sa.Connection, route_id: str) -> dict[str, Any]:
    return route_view(_route(conn, route_id))
