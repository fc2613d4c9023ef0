"""Flask integration: a view decorator that passes the verified event to the view.

    from msgine.webhooks.flask import webhook_endpoint

    @app.post("/webhooks/msgine")
    @webhook_endpoint(secret=from_env(), dedupe=MemoryDedupeStore())
    def msgine_webhook(event):
        return "", 204

Bad signature: 401; address outside the allow-list: 403; duplicate: 200 without calling the view.
If the view raises, the dedupe claim is released so the sender's retry is processed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue

from ._dedupe import DedupeStore, Deduplicator
from ._ipallow import IpAllowList
from ._receiver import WebhookReceiver
from ._secrets import SecretSpec

__all__ = ["webhook_endpoint"]


def webhook_endpoint(
    secret: SecretSpec,
    *,
    tolerance: int = 300,
    dedupe: Deduplicator | DedupeStore | None = None,
    allow_list: IpAllowList | None = None,
    allow_legacy: bool = False,
) -> Callable[[Callable[..., ResponseReturnValue]], Callable[..., ResponseReturnValue]]:
    receiver = WebhookReceiver(
        secret, tolerance=tolerance, dedupe=dedupe, allow_list=allow_list, allow_legacy=allow_legacy
    )

    def decorate(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            decision = receiver.check(
                request.get_data(cache=True),
                request.headers,
                request.remote_addr,
                request.headers.get("X-Forwarded-For"),
            )
            if decision.event is None:
                return jsonify(decision.body()), decision.status
            try:
                result = view(decision.event, *args, **kwargs)
            except BaseException:
                receiver.failed(decision)
                raise
            receiver.succeeded(decision)
            return result

        return wrapper

    return decorate
