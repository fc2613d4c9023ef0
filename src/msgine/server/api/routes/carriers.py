"""Routes: receipts and inbound messages pushed by HTTP upstream carriers.

``POST /carriers/{carrier}/callbacks/{token}/{what}``: no API key (the provider has none of
ours); the carriers service authenticates the request by the path's token and the provider's
signature before reading it (docs/carriers-http.md), and answers 401 ``unauthorized`` otherwise.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from msgine.server.api._deps import client_ip, runtime_of
from msgine.server.api._openapi import answers
from msgine.server.carriers import CallbackRequest, DurableEvents, receive_callback

router = APIRouter(tags=["carriers"])


@router.post(
    "/carriers/{carrier}/callbacks/{token}/{what}",
    operation_id="carrier_callback",
    include_in_schema=True,
    **answers(None, 400, 401, 413, authenticated=False),
)
async def carrier_callback(carrier: str, token: str, what: str, request: Request) -> Response:
    """A provider's delivery receipt or inbound message for one carrier (signed by it)."""
    runtime = runtime_of(request)
    public = runtime.settings.public_url
    url = str(request.url)
    if public:
        query = f"?{request.url.query}" if request.url.query else ""
        url = public.rstrip("/") + request.url.path + query
    callback = CallbackRequest(
        method=request.method,
        url=url,
        what=what,
        headers={k.lower(): v for k, v in request.headers.items()},
        body=await request.body(),
        client_ip=client_ip(request),
        received_at=runtime.now(),
    )
    sink: DurableEvents = request.app.state.carrier_sink
    received = await receive_callback(runtime, sink, carrier, token, callback)
    content = received.content
    return Response(content.answer, media_type=content.content_type)


def install(app: Any) -> None:
    app.state.carrier_sink = DurableEvents(app.state.runtime)
