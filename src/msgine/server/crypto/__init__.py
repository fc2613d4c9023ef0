"""Envelope encryption, blind indexes and keyed hashes for data at rest.

The master key (or keys, newest first, during a rotation) only wraps data keys; the data keys
live in the database, wrapped. Rotating the master key therefore re-wraps a handful of rows and
never re-encrypts data.
"""

from msgine.server.crypto._datakeys import load_vault, open_vault
from msgine.server.crypto._keyring import MasterKeyError, MasterKeyRing, load_master_keys
from msgine.server.crypto._rotation import key_file_for_rotation, rotate_master_key
from msgine.server.crypto._vault import DecryptionError, Vault

__all__ = [
    "DecryptionError",
    "MasterKeyError",
    "MasterKeyRing",
    "Vault",
    "key_file_for_rotation",
    "load_master_keys",
    "load_vault",
    "open_vault",
    "rotate_master_key",
]
