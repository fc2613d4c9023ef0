"""Publishing the audit chain's head outside the database, and reading it back.

Deleting the newest audit rows leaves a shorter chain that still verifies; only a head recorded
elsewhere reveals it (see :mod:`msgine.server.audit._chain`). The gateway therefore publishes the
head (sequence number and hash) whenever it moves: as an ``audit_head`` event in the security log
(which the operator ships off the host), and, with ``MSGINE_AUDIT_ANCHOR_FILE``, to a small JSON
file replaced atomically (a path on other storage, a write-once mount, a synced folder).
``msgine audit verify --anchor FILE`` reads either back. The hash is a keyed HMAC: publishing it
reveals nothing of the entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from msgine.server.audit._chain import ChainAnchor
from msgine.server.logging import get_logger, security_event
from msgine.server.storage import audit_log

if TYPE_CHECKING:
    from msgine.server.runtime import Runtime

HEAD_EVENT = "audit_head"
log = get_logger("msgine.audit")


class AnchorError(ValueError):
    """An anchor file that holds no usable head."""


def read_head(conn: sa.Connection) -> ChainAnchor | None:
    """The newest entry's sequence number and hash; None for an empty log."""
    row = conn.execute(
        sa.select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
    ).first()
    return None if row is None else ChainAnchor(int(row[0]), str(row[1]))


def write_anchor_file(path: Path, head: ChainAnchor, now: datetime) -> None:
    """Replace ``path`` with the head, atomically: a reader sees the old or the new head, never
    a torn file, and a crash leaves the old one."""
    document = {"seq": head.seq, "hash": head.hash, "publishedAt": now.isoformat()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(document, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_anchor(path: Path) -> ChainAnchor:
    """The head in an anchor file, or the newest ``audit_head`` event of a security log (JSON
    lines), whichever ``path`` is."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise AnchorError(f"cannot read {path}: {exc.strerror}") from None
    candidates: list[Any] = []
    try:
        candidates.append(json.loads(text))
    except json.JSONDecodeError:
        for line in text.splitlines():
            try:
                candidates.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    heads = [c for c in candidates if isinstance(c, dict) and _is_head(c)]
    if not heads:
        raise AnchorError(f"{path} holds no audit chain head")
    newest = max(heads, key=lambda c: int(c["seq"]))
    return ChainAnchor(int(newest["seq"]), str(newest["hash"]))


def _is_head(candidate: dict[str, Any]) -> bool:
    if candidate.get("event", HEAD_EVENT) != HEAD_EVENT:
        return False
    seq, digest = candidate.get("seq"), candidate.get("hash")
    return (
        isinstance(seq, int)
        and not isinstance(seq, bool)
        and seq >= 1
        and isinstance(digest, str)
        and len(digest) == 64
    )


class HeadPublisher:
    """Publishes the head when it has moved since the last publication."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.published: ChainAnchor | None = None

    async def publish(self) -> ChainAnchor | None:
        head = await self.runtime.db.aread(read_head)
        if head is None or head == self.published:
            return head
        security_event(HEAD_EVENT, seq=head.seq, hash=head.hash)
        path = self.runtime.settings.audit_anchor_file
        if path is not None:
            await asyncio.to_thread(write_anchor_file, path, head, self.runtime.now())
        self.published = head
        return head


async def publish_heads(runtime: Runtime, stop: asyncio.Event) -> None:
    """Background task of ``msgine serve``: publish the head every
    ``MSGINE_AUDIT_ANCHOR_INTERVAL`` seconds when it moved, and once more on the way out."""
    publisher = HeadPublisher(runtime)
    interval = runtime.settings.audit_anchor_interval
    while True:
        try:
            await publisher.publish()
        except Exception as exc:  # keep publishing once the database or disk is back
            log.error("audit_head_not_published", error_type=type(exc).__name__)
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
