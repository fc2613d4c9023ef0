"""Helpers of the carrier framework's tests: configuring carriers and routes through the same
service functions the CLI calls, and reading the status history."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import carrier_stub
import sqlalchemy as sa

TOKEN = "stub-token-Zq8v1XK3pw"  # a credential that must never show anywhere
UG = "+256701521269"
KE = "+254712345678"


@dataclass
class Operator:
    """Configures carriers and routes on a runtime, as ``cli:test``."""

    runtime: Any
    logs: Path

    @property
    def actor(self) -> Any:
        from msgine.server.audit import Actor

        return Actor(name="cli:test")

    def log_of(self, name: str) -> Path:
        return self.logs / f"{name}.jsonl"

    def add_carrier(self, name: str, **options: Any) -> dict[str, Any]:
        from msgine.server.carriers._config import add_carrier

        extra = {k: options.pop(k) for k in ("on_uncertain_submit", "retry_budget") if k in options}
        options.setdefault("log_path", str(self.log_of(name)))
        return self.runtime.db.write(
            lambda conn: add_carrier(
                conn,
                self.runtime.vault,
                name=name,
                kind="stub",
                options=options,
                credentials={"token": TOKEN},
                now=self.runtime.now(),
                actor=self.actor,
                **extra,
            )
        )

    def update_carrier(self, name: str, **changes: Any) -> dict[str, Any]:
        from msgine.server.carriers._config import update_carrier

        return self.runtime.db.write(
            lambda conn: update_carrier(
                conn, self.runtime.vault, name, now=self.runtime.now(), actor=self.actor, **changes
            )
        )

    def add_route(self, carriers: list[str], **kwargs: Any) -> dict[str, Any]:
        from msgine.server.carriers._config import add_route

        kwargs.setdefault("price_per_segment", 25)
        kwargs.setdefault("currency", "UGX")
        if "prefix" not in kwargs and "country" not in kwargs:
            kwargs["country"] = "UG"
        return self.runtime.db.write(
            lambda conn: add_route(
                conn,
                self.runtime.vault,
                carrier_names=carriers,
                now=self.runtime.now(),
                actor=self.actor,
                **kwargs,
            )
        )

    def submits(self, name: str) -> list[dict[str, Any]]:
        return carrier_stub.submits(self.log_of(name))


CARRIERS_HTTP_DOC = Path(__file__).parents[2] / "docs" / "carriers-http.md"


def answer_code(cell: str) -> str:
    """An answer table's code cell: "any ..." stands for every code (``*`` in the code's tables)."""
    return "*" if cell.startswith("any") else cell


def answer_outcome(cell: str) -> str:
    """An answer table's outcome cell: its first word (what follows explains it)."""
    return cell.split()[0].rstrip(",")


def doc_rows(doc: Path, first_header: str) -> list[list[str]]:
    """The cells of the Markdown table whose first header starts with ``first_header``."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header}"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
    return rows


def http_doc_rows(first_header: str) -> list[list[str]]:
    """:func:`doc_rows` of docs/carriers-http.md."""
    return doc_rows(CARRIERS_HTTP_DOC, first_header)


def history(runtime: Any, recipient_id: str | None = None) -> list[dict[str, Any]]:
    """The status history as the timeline shows it, oldest first (one recipient's, or every
    recipient's, message by message): stored rows and the steps rebuilt from recipients."""
    from msgine.server.messages._history import status_history
    from msgine.server.storage._tables import recipients

    query = sa.select(recipients.c.message_id, recipients.c.id).order_by(recipients.c.message_id)
    if recipient_id is not None:
        query = query.where(recipients.c.id == recipient_id)

    def read(conn: sa.Connection) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = []
        timelines: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for message_id, rid in conn.execute(query).all():
            if message_id not in timelines:
                timelines[message_id] = status_history(conn, message_id)
            steps.extend(timelines[message_id][rid])
        return steps

    return runtime.db.read(read)  # type: ignore[no-any-return]


def recipient(runtime: Any, message_id: str) -> dict[str, Any]:
    from msgine.server.storage._tables import recipients

    query = sa.select(recipients).where(recipients.c.message_id == message_id)
    return dict(runtime.db.read(lambda c: c.execute(query).mappings().one()))
