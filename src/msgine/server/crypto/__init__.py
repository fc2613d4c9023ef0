"""Envelope encryption, blind indexes and keyed hashes for data at rest.

The master key (or keys, newest first, during a rotation) only wraps data keys; the data keys
live in the database, wrapped. Rotating the master key therefore re-wraps a handful of rows and
never re-encrypts data.
"""

from msgine.server.crypto._keyring import MasterKeyRing, load_master_keys
from msgine.server.crypto._vault import DecryptionError, Vault

__all__ = ["DecryptionError", "MasterKeyRing", "Vault", "load_master_keys"]
