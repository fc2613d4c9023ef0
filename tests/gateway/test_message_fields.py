"""Every message answer carries what MsGine's official clients read, with the type they expect.

``OFFICIAL_FIELDS`` is THE list (docs/sdk.md repeats it): the fields MsGine's Python SDK 2.0.0
reads into its ``MessageRecord`` (``_msg``: id, channel, to, from, content, status, cost,
currency, createdAt, subject, scheduledAt, sentAt) and those its TypeScript SDK's
``SendSmsResponse`` adds (sid, updatedAt). Each answer of every route that returns messages
(send on both paths, an idempotent replay, get on both paths, both listings) is checked
against it, for messages in each state the list's types depend on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

Check = Callable[[Any], bool]


def _string(value: Any) -> bool:
    return isinstance(value, str)


def _time(value: Any) -> bool:
    try:
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _optional_time(value: Any) -> bool:
    return value is None or _time(value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


#: field -> (must be present, type check). Optional fields may be absent; when present they
#: must have the type.
OFFICIAL_FIELDS: dict[str, tuple[bool, Check]] = {
    "id": (True, _string),
    "sid": (True, lambda v: v is None or isinstance(v, str)),
    "channel": (True, lambda v: v == "sms"),
    "to": (True, _strings),
    "from": (True, _string),
    "content": (True, _string),
    "status": (True, _string),
    "cost": (True, _number),
    "currency": (True, lambda v: isinstance(v, str) and len(v) == 3),
    "createdAt": (True, _time),
    "updatedAt": (False, _time),
    "subject": (False, lambda v: v is None or isinstance(v, str)),
    "scheduledAt": (True, _optional_time),
    "sentAt": (True, _optional_time),
}
#: A listing, as the official SDK's ``history`` reads it.
PAGE_FIELDS: dict[str, Check] = {
    "messages": lambda v: isinstance(v, list),
    "total": lambda v: isinstance(v, int),
    "page": lambda v: isinstance(v, int),
    "pages": lambda v: isinstance(v, int),
}


def problems(message: dict[str, Any]) -> list[str]:
    found = []
    for name, (required, check) in OFFICIAL_FIELDS.items():
        if name not in message:
            if required:
                found.append(f"{name}: missing")
        elif not check(message[name]):
            found.append(f"{name}: {type(message[name]).__name__} {message[name]!r}")
    return found


def _checked(message: dict[str, Any]) -> dict[str, Any]:
    assert problems(message) == [], message["id"]
    return message


def test_the_list_catches_what_breaks_a_client() -> None:
    good = {
        "id": "msg_1",
        "sid": "msg_1",
        "channel": "sms",
        "to": ["+256701521269"],
        "from": "",
        "content": "hi",
        "status": "queued",
        "cost": 30,
        "currency": "UGX",
        "createdAt": "2026-01-01T00:00:00.000Z",
        "scheduledAt": None,
        "sentAt": None,
    }
    assert problems(good) == []
    assert problems({**good, "from": None}) == ["from: NoneType None"]
    assert problems({**good, "sentAt": "yesterday"}) == ["sentAt: str 'yesterday'"]
    assert problems({**good, "to": [None]}) == ["to: list [None]"]
    missing = dict(good)
    del missing["scheduledAt"]
    assert problems(missing) == ["scheduledAt: missing"]


async def _answers(api: Any, response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def test_every_message_answer_has_the_official_fields(api: Any) -> None:
    headers = api.headers()
    later = (api.runtime.now() + timedelta(days=1)).isoformat()
    sends = [
        ("/api/v1/messages/sms", {"to": "+256701521269", "message": "no sender"}),
        ("/api/v1/developers/sms", {"to": "+256701521270", "message": "hi", "from": "MyApp"}),
        ("/api/v1/messages/sms", {"to": "+256701521999", "message": "fails"}),
        (
            "/api/v1/messages/sms",
            {"to": "+256701521271", "message": "later", "scheduledFor": later},
        ),
        (
            "/api/v1/messages/sms",
            {"to": "+256701521272", "message": "once", "idempotencyKey": "k1"},
        ),
        (
            "/api/v1/messages/sms",
            {"to": "+256701521272", "message": "once", "idempotencyKey": "k1"},
        ),
    ]
    accepted = []
    for path, body in sends:
        sent = _checked(
            await _answers(api, await api.client.post(path, json=body, headers=headers), 201)
        )
        accepted.append(sent)
        assert sent["sentAt"] is None  # nothing has gone to a carrier yet
    assert accepted[0]["from"] == "" and accepted[1]["from"] == "MyApp"
    assert accepted[3]["scheduledAt"] == accepted[3]["scheduledFor"] is not None

    await api.drain()
    for message in accepted:
        for path in ("/api/v1/messages/", "/api/v1/developers/"):
            got = _checked(
                await _answers(api, await api.client.get(path + message["id"], headers=headers))
            )
            if got["status"] in ("delivered", "failed"):
                assert got["sentAt"] is not None
                assert got["createdAt"] <= got["sentAt"]
            if got["status"] == "scheduled":
                assert got["sentAt"] is None
    for path, params in (
        ("/api/v1/messages", {"limit": 100}),
        ("/api/v1/messages", {"status": "delivered"}),
        ("/api/v1/developers/sms/history", {"page": 1, "limit": 2}),
    ):
        page = await _answers(api, await api.client.get(path, params=params, headers=headers))
        assert all(check(page[name]) for name, check in PAGE_FIELDS.items())
        assert page["messages"]
        for message in page["messages"]:
            _checked(message)


async def test_the_openapi_document_types_the_official_fields(api: Any) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    view = schema["components"]["schemas"]["MessageView"]
    assert {"from", "sentAt", "scheduledAt"} <= set(view["required"])
    assert view["properties"]["from"]["type"] == "string"
