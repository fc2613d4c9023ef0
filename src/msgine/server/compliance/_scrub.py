"""Making removed personal data unrecoverable from the embedded database's files.

SQLite leaves deleted and overwritten values in free space inside its pages, and old page images
in the write-ahead log, until something overwrites them. With ``secure_delete`` the freed space
is zeroed as it is freed; a truncating checkpoint then copies the new pages into the database
file and empties the log. Each erased value was ciphertext, and this also removes that
ciphertext, so not even a later leak of the master key can bring it back.
"""

from __future__ import annotations

import sqlalchemy as sa

from msgine.server.storage import Database


def zero_freed_space(conn: sa.Connection) -> None:
    """Within a write transaction: zero what this connection frees (SQLite only)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA secure_delete=ON")


def flush_log(db: Database) -> bool:
    """After the commit: move every page into the database file and empty the log (SQLite).

    Runs outside any transaction (a checkpoint cannot complete inside one). False when a
    long-running reader kept the log from being emptied; the next checkpoint finishes the job.
    """
    if not db.is_sqlite:
        return True
    raw = db.write_engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        row = cursor.fetchone()
        busy = row[0] if row else 1
        cursor.close()
    finally:
        raw.close()
    return bool(busy == 0)
