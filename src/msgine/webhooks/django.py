"""Django integration: a view decorator (CSRF-exempt, POST only) that passes the verified event.

    from msgine.webhooks.django import webhook_view

    @webhook_view(secret=from_env(), dedupe=MemoryDedupeStore())
    def msgine_webhook(request, event):
        return HttpResponse(status=204)

Bad signature: 401; address outside the allow-list: 403; duplicate: 200 without calling the view.
If the view raises, the dedupe claim is released so the sender's retry is processed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ._dedupe import DedupeStore, Deduplicator
from ._ipallow import IpAllowList
from ._receiver import WebhookReceiver
from ._secrets import SecretSpec

__all__ = ["webhook_view"]

View = Callable[..., HttpResponseBase]


def webhook_view(
    secret: SecretSpec,
    *,
    tolerance: int = 300,
    dedupe: Deduplicator | DedupeStore | None = None,
    allow_list: IpAllowList | None = None,
    allow_legacy: bool = False,
) -> Callable[[View], View]:
    receiver = WebhookReceiver(
        secret, tolerance=tolerance, dedupe=dedupe, allow_list=allow_list, allow_legacy=allow_legacy
    )

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            decision = receiver.check(
                request.body,
                request.headers,
                request.META.get("REMOTE_ADDR"),
                request.headers.get("X-Forwarded-For"),
            )
            if decision.event is None:
                return JsonResponse(decision.body(), status=decision.status)
            try:
                response = view(request, decision.event, *args, **kwargs)
            except BaseException:
                receiver.failed(decision)
                raise
            receiver.succeeded(decision)
            return response

        result: View = csrf_exempt(require_POST(wrapper))
        return result

    return decorate
