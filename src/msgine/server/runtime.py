"""The gateway's shared state: settings, database, vault and clock, opened once per process."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from msgine.server.accounts import DEFAULT_ACCOUNT_NAME, create_account, list_accounts
from msgine.server.config import Settings
from msgine.server.crypto import Vault, load_master_keys, load_vault, open_vault
from msgine.server.keys import NewKey, create_key
from msgine.server.storage import Database

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class NotInitialised(Exception):
    """No gateway where the settings point: ``where`` is the database file or the database URL
    (password hidden), for the operator to see where the command looked."""

    def __init__(self, where: str, *, reason: str) -> None:
        super().__init__(f"{reason}: {where}")
        self.where = where
        self.reason = reason


class Runtime:
    def __init__(self, settings: Settings, db: Database, vault: Vault, clock: Clock = utc_now):
        self.settings = settings
        self.db = db
        self.vault = vault
        self.clock = clock

    def __repr__(self) -> str:
        return f"Runtime(db={self.db!r})"

    @classmethod
    def open(cls, settings: Settings, *, clock: Clock = utc_now, create: bool = True) -> Runtime:
        """Migrate, load the master key and data keys. With ``create`` (``serve``, ``init``) a
        missing data directory, database and master key file are made; without it they must
        exist (:class:`NotInitialised` otherwise), so a command run in the wrong place never
        starts an empty gateway with a new master key."""
        if create:
            _create_data_dir(settings)
        elif settings.is_sqlite and not _sqlite_path(settings).exists():
            raise NotInitialised(str(_sqlite_path(settings)), reason="no database file")
        db = Database(settings.sqlalchemy_url)
        try:
            if not create and not db.is_initialised():
                raise NotInitialised(
                    describe_database(settings), reason="the database is not initialised"
                )
            ring = load_master_keys(settings, create=create)
            db.migrate(vault=lambda conn: open_vault(conn, ring))
            vault = load_vault(db, ring)
        except BaseException:
            db.close()
            raise
        return cls(settings, db, vault, clock)

    def now(self) -> datetime:
        return self.clock()

    def close(self) -> None:
        self.db.close()


def _sqlite_path(settings: Settings) -> Path:
    return Path(sa.engine.make_url(settings.sqlalchemy_url).database or "")


def describe_database(settings: Settings) -> str:
    """Where the database is, for messages: the SQLite file, or the URL without password."""
    if settings.is_sqlite:
        return str(_sqlite_path(settings))
    url = sa.engine.make_url(settings.sqlalchemy_url).set(query={})
    return url.render_as_string(hide_password=True)


def _create_data_dir(settings: Settings) -> None:
    if settings.is_sqlite or settings.master_key is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if settings.is_sqlite:
        _create_private(sa.engine.make_url(settings.sqlalchemy_url).database)


def _create_private(path: str | None) -> None:
    """Create the SQLite file readable by its owner only; SQLite gives its WAL and shared-memory
    files the same permissions. An existing file is left as the operator set it."""
    if path and path != ":memory:" and not os.path.exists(path):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def ensure_default_account(runtime: Runtime) -> NewKey | None:
    """On the very first start: a default account and a test key, returned to be shown once."""

    def create(conn: sa.Connection) -> NewKey | None:
        if list_accounts(conn):
            return None
        now = runtime.now()
        account_id = create_account(conn, DEFAULT_ACCOUNT_NAME, now)
        return create_key(
            conn, runtime.vault, account_id=account_id, now=now, name="first key", mode="test"
        )

    return runtime.db.write(create)
