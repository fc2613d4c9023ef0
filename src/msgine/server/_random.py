"""Cryptographically secure random bytes, read from the OS in blocks.

Each ``os.urandom`` call is a system call, and on some sandboxed kernels one costs over 100 µs;
the send path needs several (ids, AES-GCM nonces). Reading 64 KiB at a time and handing out
slices keeps the same CSPRNG output at a fraction of the cost. The buffer is dropped in a forked
child so two processes can never hand out the same bytes (a repeated GCM nonce would be fatal).
"""

from __future__ import annotations

import os
import threading

_BLOCK = 64 * 1024
_lock = threading.Lock()
_buffer = bytearray()


def _reset() -> None:
    global _buffer
    _buffer = bytearray()


os.register_at_fork(after_in_child=_reset)


def random_bytes(n: int) -> bytes:
    global _buffer
    with _lock:
        if len(_buffer) < n:
            _buffer = bytearray(os.urandom(max(_BLOCK, n)))
        chunk = bytes(_buffer[:n])
        del _buffer[:n]
    return chunk
