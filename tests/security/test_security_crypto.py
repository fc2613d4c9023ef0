"""Encryption failures are loud: a ciphertext moved to another row, or a wrong master key, is an
error and never someone else's data; the master key file is private."""

from __future__ import annotations

import base64
import os
import secrets
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from security_helpers import run_cli, settings_env

from msgine.server.crypto import DecryptionError
from msgine.server.crypto._keyring import MasterKeyError, load_master_keys
from msgine.server.runtime import Runtime
from msgine.server.storage._engine import _sqlite_pragmas
from msgine.server.storage._tables import recipients
from support import make_settings

A, B = "+256772938461", "+256783514297"


async def _send(api: Any, to: str) -> str:
    response = await api.send(to=to, message=f"for {to}")
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_ciphertext_moved_to_another_row_fails_loudly(api: Any) -> None:
    first, second = await _send(api, A), await _send(api, B)

    def copy_phone(conn: sa.Connection) -> None:
        blob = conn.execute(
            sa.select(recipients.c.phone).where(recipients.c.message_id == first)
        ).scalar_one()
        conn.execute(
            sa.update(recipients).where(recipients.c.message_id == second).values(phone=blob)
        )

    api.runtime.db.write(copy_phone)
    with pytest.raises(DecryptionError):  # in-process, the app's error surfaces as raised
        await api.client.get(f"/api/v1/messages/{second}", headers=api.headers())
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get(f"/api/v1/messages/{second}", headers=api.headers())
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert A not in response.text
    ok = await api.client.get(f"/api/v1/messages/{first}", headers=api.headers())
    assert ok.json()["to"] == [A]


def test_vault_binds_ciphertext_to_table_column_and_row(runtime: Any) -> None:
    vault = runtime.vault
    blob = vault.encrypt_str(A, table="recipients", column="phone", row_id="rcp_1")
    assert vault.decrypt_str(blob, table="recipients", column="phone", row_id="rcp_1") == A
    for table, column, row in [
        ("recipients", "phone", "rcp_2"),
        ("recipients", "other", "rcp_1"),
        ("consents", "phone", "rcp_1"),
    ]:
        with pytest.raises(DecryptionError) as caught:
            vault.decrypt_str(blob, table=table, column=column, row_id=row)
        assert A not in str(caught.value)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(DecryptionError):
        vault.decrypt(tampered, table="recipients", column="phone", row_id="rcp_1")


def test_blind_index_is_keyed_and_per_account(runtime: Any) -> None:
    vault = runtime.vault
    index = vault.blind_index("acc_1", A)
    assert index == vault.blind_index("acc_1", A)
    assert index != vault.blind_index("acc_2", A)
    assert index != vault.blind_index("acc_1", B)
    assert A[1:] not in index


def test_wrong_master_key_fails_at_start(
    runtime: Any, tmp_path: Path, database_url: str | None
) -> None:
    other = base64.b64encode(secrets.token_bytes(32)).decode()
    settings = make_settings(tmp_path, database_url, master_key=other)
    with pytest.raises(DecryptionError) as caught:
        Runtime.open(settings)
    assert other not in str(caught.value)


def test_wrong_master_key_fails_in_the_cli(runtime: Any) -> None:
    other = base64.b64encode(secrets.token_bytes(32)).decode()
    result = run_cli(settings_env(runtime.settings, MSGINE_MASTER_KEY=other), "keys", "list")
    assert result.returncode == 1
    assert "DecryptionError" in result.stderr
    assert other not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_first_start_creates_a_private_key_file_and_refuses_a_shared_one(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, master_key=None)
    Runtime.open(settings).close()  # a gateway, so the command below gets as far as the key
    ring = load_master_keys(settings)
    path = settings.resolved_master_key_file
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_master_keys(settings).keys == ring.keys
    os.chmod(path, 0o640)
    with pytest.raises(MasterKeyError, match="chmod 600"):
        load_master_keys(settings)
    result = run_cli(settings_env(settings), "keys", "list")
    assert result.returncode == 1
    assert "accessible by other users" in result.stderr


def test_sqlite_connections_overwrite_deleted_content() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("PRAGMA secure_delete=OFF")
    _sqlite_pragmas(conn, None)
    assert conn.execute("PRAGMA secure_delete").fetchone() == (1,)


def test_erased_value_is_gone_from_the_sqlite_file(tmp_path: Path) -> None:
    marker = "Erasable-Pelican-6627 " * 20
    rt = Runtime.open(make_settings(tmp_path))
    try:

        def insert(conn: sa.Connection) -> None:
            conn.execute(sa.text("CREATE TABLE scratch (v TEXT)"))
            conn.execute(sa.text("INSERT INTO scratch VALUES (:v)"), {"v": marker})

        rt.db.write(insert)
        rt.db.write(lambda conn: conn.execute(sa.text("DELETE FROM scratch")))
    finally:
        rt.close()
    raw = sqlite3.connect(tmp_path / "data" / "msgine.db", isolation_level=None)
    try:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()
    files = list((tmp_path / "data").glob("msgine.db*"))
    assert files
    assert all(marker[:20].encode() not in f.read_bytes() for f in files)
