"""Client-side validation raises ``MsGineValidationError`` before any request is made."""

from __future__ import annotations

from datetime import datetime

import pytest
from sdk_helpers import ScriptedServer

from msgine import MsGineClient, MsGineValidationError


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"to": "0701521269"}, "invalid_phone_number"),
        ({"to": "+0701521269"}, "invalid_phone_number"),
        ({"to": "+25670"}, "invalid_phone_number"),
        ({"to": "+2567015212691234"}, "invalid_phone_number"),
        ({"to": "+256701521269,"}, "invalid_phone_number"),
        ({"to": []}, "invalid_phone_number"),
        ({"to": ["+256701521269", 5]}, "invalid_phone_number"),
        ({"message": ""}, "message_empty"),
        ({"message": "   \n"}, "message_empty"),
        ({"message": "x" * 1001}, "message_too_long"),
        ({"from_": ""}, "invalid_sender_id"),
        ({"from_": "TwelveChars1"}, "invalid_sender_id"),
        ({"from_": "12345"}, "invalid_sender_id"),
        ({"from_": " MyApp"}, "invalid_sender_id"),
        ({"from_": "My-App"}, "invalid_sender_id"),
        ({"from_": "MyÄpp"}, "invalid_sender_id"),
        ({"callback_url": "http://example.com/cb"}, "insecure_callback_url"),
        ({"scheduled_for": datetime(2030, 1, 1)}, "invalid_request"),
        ({"scheduled_for": "tomorrow"}, "invalid_request"),
        ({"type": "promo"}, "invalid_request"),
        ({"idempotency_key": "key\nwith newline"}, "invalid_request"),
    ],
)
def test_invalid_sends_never_reach_the_server(
    server: ScriptedServer, api_key: str, kwargs: dict[str, object], code: str
) -> None:
    args: dict[str, object] = {"to": "+256701521269", "message": "Hello", **kwargs}
    with (
        MsGineClient(api_key, base_url=server.base_url) as client,
        pytest.raises(MsGineValidationError) as caught,
    ):
        client.sms.send(**args)  # type: ignore[arg-type]
    assert caught.value.code == code
    assert caught.value.status_code is None
    assert server.seen == []
    # The rejected value (a number or message text) is not echoed.
    for value in kwargs.values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in str(caught.value)


@pytest.mark.parametrize(
    "sender", ["MyApp", "My App", "A", "Shop2Go", "ABCDEFGHIJK", "+256701521269"]
)
def test_valid_sender_ids(server: ScriptedServer, api_key: str, sender: str) -> None:
    with MsGineClient(api_key, base_url=server.base_url) as client:
        client.sms.send("+256701521269", "x" * 1000, from_=sender)
    assert len(server.seen) == 1


@pytest.mark.parametrize(("page", "limit"), [(0, 20), (1, 0), (1, 101)])
def test_history_paging_is_checked(
    server: ScriptedServer, api_key: str, page: int, limit: int
) -> None:
    with (
        MsGineClient(api_key, base_url=server.base_url) as client,
        pytest.raises(MsGineValidationError),
    ):
        client.sms.history(page=page, limit=limit)
    assert server.seen == []
