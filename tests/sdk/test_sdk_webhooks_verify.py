"""``verify`` against the independent ``standardwebhooks`` library, and every way to fail it."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from django.http.request import HttpHeaders
from standardwebhooks import Webhook
from werkzeug.datastructures import Headers

from msgine.webhooks import (
    MemoryDedupeStore,
    WebhookVerificationError,
    WebhookVerifier,
    encode_body,
    generate_secret,
    sign_hex,
    sign_standard,
    signature_headers,
    verify,
)

NOW = 1_750_000_000
EVENT = {
    "id": "evt_1",
    "event": "message.delivered",
    "status": "delivered",
    "messageId": "msg_1",
    "to": "+256701521269",
    "from": "MyApp",
    "sid": "SM1",
    "timestamp": "2025-06-15T15:06:40Z",
    "data": {"text": "héllo ✓"},
}


def legacy() -> dict[str, Any]:
    """What accepting ``x-msgine-signature`` alone takes: opting in, and a dedupe store."""
    return {"allow_legacy": True, "dedupe": MemoryDedupeStore(), "now": NOW}


def delivery(secret: str, *, msg_id: str = "evt_1", ts: int = NOW) -> tuple[bytes, dict[str, str]]:
    body = encode_body({**EVENT, "id": msg_id})
    return body, signature_headers([secret], msg_id, ts, body)


def reason_of(*args: Any, **kwargs: Any) -> str:
    with pytest.raises(WebhookVerificationError) as caught:
        verify(*args, **kwargs)
    return caught.value.reason


def test_accepts_what_standardwebhooks_signs() -> None:
    secret = generate_secret()
    body = encode_body(EVENT)
    signature = Webhook(secret).sign("evt_1", datetime.fromtimestamp(NOW, UTC), body.decode())
    headers = {"Webhook-Id": "evt_1", "Webhook-Timestamp": str(NOW), "Webhook-Signature": signature}
    assert verify(body, headers, secret, now=NOW) == EVENT


def test_standardwebhooks_accepts_what_we_sign() -> None:
    secret = generate_secret()
    body, headers = delivery(secret, ts=int(datetime.now(UTC).timestamp()))
    assert Webhook(secret).verify(body, headers) == EVENT
    assert sign_standard(secret, "evt_1", NOW, body) == Webhook(secret).sign(
        "evt_1", datetime.fromtimestamp(NOW, UTC), body.decode()
    )


def test_hex_signature_is_hmac_of_body_keyed_with_the_whole_secret() -> None:
    import hashlib
    import hmac

    secret = generate_secret()
    body = encode_body(EVENT)
    assert sign_hex(secret, body) == hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert verify(body, {"X-MsGine-Signature": sign_hex(secret, body)}, secret, **legacy()) == EVENT


def test_rotation_any_current_secret_verifies() -> None:
    old, new = generate_secret(), generate_secret()
    body = encode_body(EVENT)
    headers = signature_headers([new, old], "evt_1", NOW, body)
    assert len(headers["webhook-signature"].split()) == 2
    # One hex value, with the secret every receiver holds during the grace period: the old one.
    assert headers["x-msgine-signature"] == sign_hex(old, body)
    hex_only = {"x-msgine-signature": headers["x-msgine-signature"]}
    for held in (old, new, [generate_secret(), old]):
        assert verify(body, headers, held, now=NOW)["id"] == "evt_1"
    for held in (old, [new, old]):
        assert verify(body, hex_only, held, **legacy())["id"] == "evt_1"
    assert reason_of(body, hex_only, new, **legacy()) == "no_matching_signature"


@pytest.mark.parametrize(
    "headers_type",
    [
        dict,
        Headers,
        lambda h: HttpHeaders({f"HTTP_{k.upper().replace('-', '_')}": v for k, v in h.items()}),
        lambda h: list(h.items()),
        lambda h: [(k.encode(), v.encode()) for k, v in h.items()],
    ],
)
def test_header_containers(headers_type: Any) -> None:
    secret = generate_secret()
    body, headers = delivery(secret)
    assert verify(body, headers_type(headers), secret, now=NOW)["id"] == "evt_1"


def test_str_payload_and_unpadded_secret() -> None:
    secret = generate_secret()
    body, headers = delivery(secret)
    assert verify(body.decode(), headers, secret.rstrip("="), now=NOW)["id"] == "evt_1"


def test_tampered_body_fails() -> None:
    secret = generate_secret()
    body, headers = delivery(secret)
    tampered = body.replace(b"delivered", b"failed")
    assert reason_of(tampered, headers, secret, now=NOW) == "no_matching_signature"


@pytest.mark.parametrize("field", ["webhook-id", "webhook-timestamp"])
def test_tampered_signed_headers_fail(field: str) -> None:
    secret = generate_secret()
    body, headers = delivery(secret)
    headers[field] = "evt_2" if field == "webhook-id" else str(NOW + 1)
    assert reason_of(body, headers, secret, now=NOW) == "no_matching_signature"


def test_wrong_key_fails_on_both_schemes() -> None:
    body, headers = delivery(generate_secret())
    other = generate_secret()
    assert reason_of(body, headers, other, now=NOW) == "no_matching_signature"
    hex_only = {"x-msgine-signature": headers["x-msgine-signature"]}
    assert reason_of(body, hex_only, other, **legacy()) == "no_matching_signature"


def test_stale_and_future_timestamps_fail_both_ways() -> None:
    secret = generate_secret()
    body, headers = delivery(secret)
    assert verify(body, headers, secret, now=NOW + 300)["id"] == "evt_1"
    assert verify(body, headers, secret, now=NOW - 300)["id"] == "evt_1"
    assert reason_of(body, headers, secret, now=NOW + 301) == "timestamp_too_old"
    assert reason_of(body, headers, secret, now=NOW - 301) == "timestamp_in_future"
    assert reason_of(body, headers, secret, 10, now=NOW + 11) == "timestamp_too_old"


def test_standard_headers_cannot_be_downgraded_to_hex() -> None:
    """With a stale signed timestamp, a valid hex signature must not rescue the delivery."""
    secret = generate_secret()
    body, headers = delivery(secret)
    assert reason_of(body, headers, secret, now=NOW + 10_000) == "timestamp_too_old"
    partial = {
        "webhook-timestamp": headers["webhook-timestamp"],
        "x-msgine-signature": headers["x-msgine-signature"],
    }
    assert reason_of(body, partial, secret, now=NOW) == "missing_header"


def test_legacy_is_refused_by_default() -> None:
    secret = generate_secret()
    body = encode_body(EVENT)
    hex_only = {"x-msgine-signature": sign_hex(secret, body)}
    assert reason_of(body, hex_only, secret) == "missing_header"
    assert reason_of(body, hex_only, secret, allow_legacy=False) == "missing_header"


GOOD = generate_secret()
GOOD_BODY, GOOD_HEADERS = delivery(GOOD)


MALFORMED = [
    (GOOD_BODY, {}, GOOD, "missing_header"),
    (GOOD_BODY, {**GOOD_HEADERS, "webhook-id": ""}, GOOD, "missing_header"),
    (
        GOOD_BODY,
        {k: v for k, v in GOOD_HEADERS.items() if k != "webhook-signature"},
        GOOD,
        "missing_header",
    ),
    (GOOD_BODY, {**GOOD_HEADERS, "webhook-timestamp": "soon"}, GOOD, "bad_timestamp"),
    (GOOD_BODY, {**GOOD_HEADERS, "webhook-timestamp": "-1"}, GOOD, "bad_timestamp"),
    (GOOD_BODY, {**GOOD_HEADERS, "webhook-timestamp": "1e9"}, GOOD, "bad_timestamp"),
    (GOOD_BODY, {**GOOD_HEADERS, "webhook-timestamp": "9" * 400}, GOOD, "bad_timestamp"),
    (
        GOOD_BODY,
        {**GOOD_HEADERS, "webhook-timestamp": "\u0661\u0667\u0665" + "\u0660" * 7},
        GOOD,
        "bad_timestamp",
    ),
    (GOOD_BODY, {**GOOD_HEADERS, "webhook-signature": "nocomma"}, GOOD, "malformed_signature"),
    (
        GOOD_BODY,
        {**GOOD_HEADERS, "webhook-signature": "v1,!!!notbase64"},
        GOOD,
        "malformed_signature",
    ),
    (
        GOOD_BODY,
        {**GOOD_HEADERS, "webhook-signature": "v2,abcd"},
        GOOD,
        "no_matching_signature",
    ),
    (GOOD_BODY, {**GOOD_HEADERS, "webhook-signature": "v1,"}, GOOD, "no_matching_signature"),
    (GOOD_BODY, {**GOOD_HEADERS, "webhook-signature": "v1,ü€"}, GOOD, "malformed_signature"),
    (GOOD_BODY, {**GOOD_HEADERS, "webhook-id": "\ud800"}, GOOD, "malformed_header"),
    (GOOD_BODY, {"x-msgine-signature": "zz ü€"}, GOOD, "missing_header"),
    (GOOD_BODY, 42, GOOD, "malformed_header"),
    (GOOD_BODY, [("only-one",)], GOOD, "malformed_header"),
    (12345, GOOD_HEADERS, GOOD, "invalid_payload"),
    ("\ud800", GOOD_HEADERS, GOOD, "invalid_payload"),
    (GOOD_BODY, GOOD_HEADERS, "", "bad_secret"),
    (GOOD_BODY, GOOD_HEADERS, [], "bad_secret"),
    (GOOD_BODY, GOOD_HEADERS, [None], "bad_secret"),
    (GOOD_BODY, GOOD_HEADERS, "whsec_!!!", "bad_secret"),
    (GOOD_BODY, GOOD_HEADERS, 7, "bad_secret"),
]


# Ids by position and reason: the values hold a random secret, and test ids must be the same in
# every process that collects them (pytest-xdist compares them).
@pytest.mark.parametrize(
    ("payload", "headers", "secret", "reason"),
    MALFORMED,
    ids=[f"{n}-{case[3]}" for n, case in enumerate(MALFORMED)],
)
def test_malformed_inputs_raise_only_verification_errors(
    payload: Any, headers: Any, secret: Any, reason: str
) -> None:
    assert reason_of(payload, headers, secret, now=NOW) == reason


def _signed(body: bytes, secret: str) -> dict[str, str]:
    return signature_headers([secret], "evt_1", NOW, body)


@pytest.mark.parametrize("body", [b"\xff\xfe{}", b"not json", b"[1,2]", b'"x"', b"[" * 100_000])
def test_correctly_signed_but_invalid_payloads(body: bytes) -> None:
    assert reason_of(body, _signed(body, GOOD), GOOD, now=NOW) == "invalid_payload"


def test_secret_without_whsec_prefix_works_for_both_schemes() -> None:
    raw = base64.b64encode(b"k" * 32).decode()
    body = encode_body(EVENT)
    assert verify(body, signature_headers([raw], "evt_1", NOW, body), raw, now=NOW)["id"] == "evt_1"


def test_non_base64_secret_can_still_verify_hex() -> None:
    secret = "legacy-secret-äöü"
    body = encode_body(EVENT)
    hex_only = {"x-msgine-signature": sign_hex(secret, body)}
    assert verify(body, hex_only, secret, **legacy())["id"] == "evt_1"
    assert (
        reason_of(
            body,
            {"webhook-id": "e", "webhook-timestamp": str(NOW), "webhook-signature": "v1,AA=="},
            secret,
            now=NOW,
        )
        == "bad_secret"
    )


def test_errors_and_reprs_hold_no_secret_or_payload() -> None:
    secret = generate_secret()
    body, headers = delivery(secret)
    verifier = WebhookVerifier([secret])
    assert secret not in repr(verifier)
    for bad in (
        {**headers, "webhook-signature": "v1,AAAA"},
        {},
        {**headers, "webhook-timestamp": "x"},
    ):
        with pytest.raises(WebhookVerificationError) as caught:
            verifier.verify(body, bad, now=NOW)
        text = str(caught.value) + repr(caught.value)
        for secret_text in (secret, secret[6:], "+256701521269", headers["webhook-signature"]):
            assert secret_text not in text


def test_encode_body_round_trips_like_json_stringify() -> None:
    body = encode_body({"b": 1, "a": 'ü\u2028\n"/', "n": None, "l": [True, False]})
    assert body == '{"b":1,"a":"ü\u2028\\n\\"/","n":null,"l":[true,false]}'.encode()
    assert json.loads(body) == {"b": 1, "a": 'ü\u2028\n"/', "n": None, "l": [True, False]}


@pytest.mark.parametrize(
    "bad", [{"f": 1.5}, {"n": [2**60]}, {"1": "x"}, {"x": {"a": float("nan")}}]
)
def test_encode_body_refuses_what_javascript_would_reformat(bad: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        encode_body(bad)


def test_generate_secret_format() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    assert generate_secret() != secret
