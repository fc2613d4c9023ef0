"""Dedupe state in Redis, shared by every process: ``SET NX EX`` makes the claim atomic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._dedupe import DEFAULT_LEASE, DEFAULT_TTL

if TYPE_CHECKING:
    import redis

_PROCESSING = "processing"
_DONE = "done"
# Delete only a claim still in progress, never a finished id another process recorded.
_RELEASE = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)


class RedisDedupeStore:
    def __init__(
        self,
        client: str | redis.Redis[Any] | redis.Redis[bytes],
        ttl: int = DEFAULT_TTL,
        prefix: str = "msgine:webhook:",
        *,
        lease: int = DEFAULT_LEASE,
    ) -> None:
        """``client`` is a ``redis.Redis`` or a URL such as ``redis://127.0.0.1:6379/0``."""
        if isinstance(client, str):
            try:
                import redis as redis_module
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise ImportError(
                    "RedisDedupeStore needs the redis package: pip install redis"
                ) from exc
            client = redis_module.Redis.from_url(client)
        self._redis = client
        self._release = client.register_script(_RELEASE)
        self.ttl = ttl
        self.lease = lease
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"RedisDedupeStore(prefix={self.prefix!r}, ttl={self.ttl})"

    def claim(self, event_id: str) -> bool:
        return bool(self._redis.set(self.prefix + event_id, _PROCESSING, nx=True, ex=self.lease))

    def complete(self, event_id: str) -> None:
        self._redis.set(self.prefix + event_id, _DONE, ex=self.ttl)

    def release(self, event_id: str) -> None:
        self._release(keys=[self.prefix + event_id], args=[_PROCESSING])
