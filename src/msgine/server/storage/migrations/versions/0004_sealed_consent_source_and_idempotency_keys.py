"""consent sources encrypted, idempotency keys stored as keyed hashes

``consents.source`` is free text about how a person consented (it can name them); it becomes an
envelope-encrypted column like the consent's evidence. ``idempotency_keys.key`` is the client's
own text; it becomes ``Vault.idempotency_hash`` of it, and each stored response is encrypted
again under its row's new associated data. Existing rows are converted in the same transaction,
with the data keys opened from the master key (``Database.migrate(vault=...)``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 16:45:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def _vault(conn: sa.Connection) -> Any:
    opener = context.config.attributes.get("vault")
    if opener is None:
        raise RuntimeError(
            "migration 0004 encrypts existing rows and needs the master key: run it through "
            "msgine (msgine db upgrade), not alembic alone"
        )
    return opener(conn)


def upgrade() -> None:
    conn = op.get_bind()
    _seal_consent_sources(conn)
    _hash_idempotency_keys(conn)


def _seal_consent_sources(conn: sa.Connection) -> None:
    with op.batch_alter_table("consents") as batch:
        batch.add_column(sa.Column("source_sealed", sa.LargeBinary, nullable=True))
    rows = conn.execute(sa.text("SELECT id, source FROM consents")).all()
    if rows:
        vault = _vault(conn)
        conn.execute(
            sa.text("UPDATE consents SET source_sealed = :sealed WHERE id = :id"),
            [
                {
                    "id": consent_id,
                    "sealed": vault.encrypt_str(
                        source, table="consents", column="source", row_id=consent_id
                    ),
                }
                for consent_id, source in rows
            ],
        )
    with op.batch_alter_table("consents") as batch:
        batch.drop_column("source")
        batch.alter_column(
            "source_sealed",
            new_column_name="source",
            existing_type=sa.LargeBinary,
            nullable=False,
        )


def _hash_idempotency_keys(conn: sa.Connection) -> None:
    rows = conn.execute(
        sa.text("SELECT account_id, mode, key, response FROM idempotency_keys")
    ).all()
    if not rows:
        return
    vault = _vault(conn)
    for account_id, mode, key, response in rows:
        # Named before 0003 gave rows a mode; renamed as the send path names them now (a test
        # row's name carries its mode, so neither mode's response decrypts as the other's).
        body = vault.decrypt(
            response, table="idempotency_keys", column="response", row_id=f"{account_id}/{key}"
        )
        hashed = vault.idempotency_hash(account_id, key)
        name = f"{account_id}/{hashed}" if mode == "live" else f"{account_id}/{mode}/{hashed}"
        conn.execute(
            sa.text(
                "UPDATE idempotency_keys SET key = :hashed, response = :response "
                "WHERE account_id = :account_id AND mode = :mode AND key = :key"
            ),
            {
                "account_id": account_id,
                "mode": mode,
                "key": key,
                "hashed": hashed,
                "response": vault.encrypt(
                    body, table="idempotency_keys", column="response", row_id=name
                ),
            },
        )


def downgrade() -> None:
    raise NotImplementedError("keyed hashes cannot be turned back into idempotency keys")
