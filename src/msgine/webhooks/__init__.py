"""Receiving MsGine webhooks safely: verify, deduplicate, allow-list, load secrets.

Verify against the raw request body, before any JSON parsing by your framework::

    from msgine.webhooks import verify, WebhookVerificationError
    event = verify(raw_body, request.headers, secret)

Framework integrations live in ``msgine.webhooks.fastapi``, ``.flask`` and ``.django``; Redis and
SQL dedupe stores load their client libraries only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._dedupe import DedupeStore, Deduplicator, MemoryDedupeStore
from ._ipallow import IpAllowList
from ._receiver import Decision, WebhookReceiver
from ._secrets import (
    CachedSecret,
    SecretUnavailableError,
    from_aws_secrets_manager,
    from_azure_key_vault,
    from_callable,
    from_dotenv,
    from_env,
    from_file,
    from_gcp_secret_manager,
)
from ._signing import (
    SECRET_PREFIX,
    encode_body,
    generate_secret,
    sign_hex,
    sign_standard,
    signature_headers,
)
from ._verify import WebhookVerificationError, WebhookVerifier, verify

if TYPE_CHECKING:
    from ._dedupe_redis import RedisDedupeStore
    from ._dedupe_sql import SqlDedupeStore

__all__ = [
    "SECRET_PREFIX",
    "CachedSecret",
    "Decision",
    "DedupeStore",
    "Deduplicator",
    "IpAllowList",
    "MemoryDedupeStore",
    "RedisDedupeStore",
    "SecretUnavailableError",
    "SqlDedupeStore",
    "WebhookReceiver",
    "WebhookVerificationError",
    "WebhookVerifier",
    "encode_body",
    "from_aws_secrets_manager",
    "from_azure_key_vault",
    "from_callable",
    "from_dotenv",
    "from_env",
    "from_file",
    "from_gcp_secret_manager",
    "generate_secret",
    "sign_hex",
    "sign_standard",
    "signature_headers",
    "verify",
]


def __getattr__(name: str) -> Any:
    # Lazy, so importing msgine.webhooks never needs redis or SQLAlchemy.
    if name == "RedisDedupeStore":
        from ._dedupe_redis import RedisDedupeStore

        return RedisDedupeStore
    if name == "SqlDedupeStore":
        from ._dedupe_sql import SqlDedupeStore

        return SqlDedupeStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
