"""Which process holds a claim, and whether that process is provably gone.

An outbox claim (a job, a webhook delivery) records its owner next to its lease. After a crash
the restarted process would otherwise wait out the lease (60 s for jobs) before taking its own
work back. With an owner it can tell, at start, which claims belong to a process that cannot
finish them, and release only those.

An owner is ``node:pid:start``. ``node`` names one process namespace on one boot of one
machine: a hash of the host name, the kernel's boot id and the pid namespace, so two containers
that share a host name, or a machine after a reboot, are different nodes. ``start`` is the
process's start time in clock ticks since boot (``/proc/PID/stat``), so a pid the kernel has
handed to another process is not mistaken for the owner; where ``/proc`` is missing it is a
random tag. A claim is *provably orphaned* only when its owner is on this node and

- the pid is the caller's own (the owner was an earlier process with the same pid, as when a
  container's pid 1 restarts), or
- no process has the pid, or it is a zombie, or its start time differs (the pid was reused).

An owner on another node is never judged: its claims wait for their lease, so a live process on
another machine never loses its work.
"""

from __future__ import annotations

import hashlib
import os
import socket
from functools import cache
from pathlib import Path

from msgine.server._ids import random_base62


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` after the command name (which may hold spaces), or None."""
    text = _read(f"/proc/{pid}/stat")
    if ")" not in text:
        return None
    return text.rsplit(")", 1)[1].split()


def _start_ticks(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None  # field 22


@cache
def _node() -> str:
    try:
        pid_namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        pid_namespace = ""
    seed = "\0".join(
        (socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"), pid_namespace)
    )
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


def owner_of(pid: int) -> str:
    """The owner name of a live local process (this one, or one a test started)."""
    start = _start_ticks(pid) or f"r{random_base62(10)}"
    return f"{_node()}:{pid}:{start}"


_this: tuple[int, str] | None = None


def this_process() -> str:
    """This process's owner name (worked out again in a forked child)."""
    global _this
    pid = os.getpid()
    if _this is None or _this[0] != pid:
        _this = (pid, owner_of(pid))
    return _this[1]


def is_gone(owner: str) -> bool:
    """True only when ``owner`` is provably not running (see the module's docstring)."""
    node, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if node != _node() or not pid_text.isdigit() or owner == this_process():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # another user's process: it exists
        pass
    fields = _stat_fields(pid)
    if fields is None:
        return False
    zombie = fields[0] == "Z"
    reused = start.isdigit() and len(fields) > 19 and fields[19] != start
    return zombie or reused
