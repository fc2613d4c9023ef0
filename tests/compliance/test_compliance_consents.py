"""Consent registry, marketing consent at send, sender identification, and the policy API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from compliance_helpers import OTHER, PHONE

from msgine.server.storage._tables import audit_log, consents

FOOTER = "MsGine: Reply STOP to opt out"


async def test_marketing_without_consent_is_refused(api: Any) -> None:
    response = await api.send(to=PHONE, message="Big sale today", type="marketing")
    assert response.status_code == 201
    recipient = response.json()["recipients"][0]
    assert (recipient["status"], recipient["errorCode"]) == ("rejected", "consent_required")


async def test_marketing_with_consent_is_sent_with_the_opt_out_line(api: Any, comp: Any) -> None:
    granted = await comp.consent(PHONE, evidence={"ip": "203.0.113.5", "form": "v2"})
    assert granted.status_code == 200, granted.text
    response = await api.send(to=[PHONE, OTHER], message="Big sale today", type="marketing")
    body = response.json()
    statuses = {r["to"]: (r["status"], r.get("errorCode")) for r in body["recipients"]}
    assert statuses[OTHER] == ("rejected", "consent_required")
    assert statuses[PHONE][0] in ("queued", "scheduled")
    assert body["content"] == f"Big sale today\n{FOOTER}"
    assert body["cost"] == 30 * body["segments"]  # only the consented recipient is billed


async def test_segments_are_counted_after_the_footer(api: Any, comp: Any) -> None:
    await comp.consent(PHONE)
    text = "x" * 150  # one segment alone, two with the footer
    transactional = (await api.send(to=PHONE, message=text)).json()
    marketing = (await api.send(to=PHONE, message=text, type="marketing")).json()
    assert transactional["segments"] == 1
    assert marketing["segments"] == 2
    assert marketing["content"].endswith(FOOTER)


async def test_footer_is_not_added_twice(api: Any, comp: Any) -> None:
    await comp.consent(PHONE)
    text = f"Sale today\n{FOOTER}"
    body = (await api.send(to=PHONE, message=text, type="marketing")).json()
    assert body["content"] == text


async def test_account_template_and_name_are_used(api: Any, comp: Any) -> None:
    response = await api.client.patch(
        "/api/v1/account/policy",
        json={"organizationName": "Acme", "optOutTemplate": "{org} - text STOP to end"},
        headers=api.headers(),
    )
    assert response.status_code == 200, response.text
    await comp.consent(PHONE)
    body = (await api.send(to=PHONE, message="Sale", type="marketing")).json()
    assert body["content"] == "Sale\nAcme - text STOP to end"


async def test_policy_can_loosen_consent_but_default_is_strict(api: Any, comp: Any) -> None:
    policy = await api.client.get("/api/v1/account/policy", headers=api.headers())
    assert policy.json()["marketingRequiresConsent"] is True
    await api.client.patch(
        "/api/v1/account/policy", json={"marketingRequiresConsent": False}, headers=api.headers()
    )
    body = (await api.send(to=PHONE, message="Sale", type="marketing")).json()
    assert body["recipients"][0]["status"] in ("queued", "scheduled")
    assert body["content"].endswith(FOOTER)  # identification still applies


async def test_consent_history_supersede_and_withdrawal(api: Any, comp: Any) -> None:
    await comp.consent(PHONE, source="web form", evidence="checkbox ticked")
    await comp.consent(PHONE, source="shop counter")
    await comp.consent(PHONE, purpose="transactional", source="order")
    got = await api.client.get(f"/api/v1/consents/{PHONE}", headers=api.headers())
    body = got.json()
    assert body["phone"] == PHONE
    assert body["active"] == {"marketing": True, "transactional": True}
    marketing = [c for c in body["consents"] if c["purpose"] == "marketing"]
    assert [(c["source"], c["active"], c["withdrawnReason"]) for c in marketing] == [
        ("shop counter", True, None),
        ("web form", False, "superseded"),
    ]
    assert marketing[1]["evidence"] == "checkbox ticked"

    withdrawn = await api.client.delete(
        f"/api/v1/consents/{PHONE}?purpose=marketing", headers=api.headers()
    )
    assert withdrawn.status_code == 200
    assert withdrawn.json()["active"] == {"marketing": False, "transactional": True}
    assert len(withdrawn.json()["consents"]) == 3  # history kept
    refused = (await api.send(to=PHONE, message="Sale", type="marketing")).json()
    assert refused["recipients"][0]["errorCode"] == "consent_required"

    again = await api.client.delete(
        f"/api/v1/consents/{PHONE}?purpose=marketing", headers=api.headers()
    )
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "not_found"
    actions = [e["action"] for e in comp.rows(audit_log) if e["action"].startswith("consent.")]
    assert actions.count("consent.granted") == 3
    assert actions.count("consent.withdrawn") == 1


async def test_consent_withdrawn_while_waiting_stops_the_message(api: Any, comp: Any) -> None:
    api.runtime.clock.freeze(datetime(2026, 3, 10, 20, 0, tzinfo=UTC))  # 23:00 in Kampala
    await comp.consent(PHONE)
    body = (await api.send(to=PHONE, message="Sale", type="marketing")).json()
    assert body["status"] == "scheduled"
    await api.client.delete(f"/api/v1/consents/{PHONE}", headers=api.headers())
    api.runtime.clock.advance(hours=10)
    await api.drain()
    recipient = (await comp.message(body["id"]))["recipients"][0]
    assert (recipient["status"], recipient["errorCode"]) == ("rejected", "consent_required")


async def test_consent_data_is_encrypted_at_rest(api: Any, comp: Any) -> None:
    await comp.consent(PHONE, evidence="signed paper form 42")
    row = comp.rows(consents)[0]
    assert PHONE.encode() not in row["phone"]
    assert b"paper form" not in row["evidence"]
    assert row["phone_index"] == api.runtime.vault.blind_index(api.account_id, PHONE)


async def test_consent_bad_input_is_a_400(api: Any) -> None:
    cases = [
        ("+256701521269", {"purpose": "newsletters", "source": "x"}, "invalid_request"),
        ("+256701521269", {"purpose": "marketing"}, "invalid_request"),
        ("+256701521269", {"purpose": "marketing", "source": ""}, "invalid_request"),
        ("+256701521269", {"purpose": "marketing", "source": "x", "extra": 1}, "invalid_request"),
        (
            "+256701521269",
            {"purpose": "marketing", "source": "x", "evidence": "e" * 5000},
            "invalid_request",
        ),
        ("0701521269", {"purpose": "marketing", "source": "x"}, "invalid_phone_number"),
        ("not-a-number", {"purpose": "marketing", "source": "x"}, "invalid_phone_number"),
    ]
    for phone, body, code in cases:
        response = await api.client.put(
            f"/api/v1/consents/{phone}", json=body, headers=api.headers()
        )
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["code"] == code
        assert "701521269" not in response.text  # errors never echo the number


async def test_compliance_routes_need_the_scope(api: Any) -> None:
    key = api.new_key(scopes=["messages:send", "messages:read"])
    headers = api.headers(key)
    calls = [
        ("GET", f"/api/v1/consents/{PHONE}", None),
        ("PUT", f"/api/v1/consents/{PHONE}", {"purpose": "marketing", "source": "x"}),
        ("DELETE", f"/api/v1/consents/{PHONE}", None),
        ("GET", "/api/v1/suppressions", None),
        ("DELETE", f"/api/v1/suppressions/{PHONE}", None),
        ("GET", f"/api/v1/privacy/export?phone={PHONE}", None),
        ("POST", "/api/v1/privacy/erase", {"phone": PHONE}),
        ("GET", "/api/v1/account/policy", None),
        ("PATCH", "/api/v1/account/policy", {"retentionDays": 5}),
    ]
    for method, path, body in calls:
        response = await api.client.request(method, path, json=body, headers=headers)
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "forbidden"
    for method, path, body in calls:
        response = await api.client.request(method, path, json=body)
        assert response.status_code == 401, (method, path)


async def test_policy_patch_validates_every_field(api: Any) -> None:
    bad = [
        {"timezone": "Mars/Olympus"},
        {"quietHoursStart": "25:00"},
        {"quietHoursStart": "09:00", "quietHoursEnd": "09:00"},
        {"quietHoursPolicy": "ignore"},
        {"optOutTemplate": "Reply STOP"},
        {"optOutTemplate": "{org} {0.__class__}"},
        {"keywords": {"optOut": ["two words"]}},
        {"keywords": {"optIn": ["STOP"]}},
        {"keywords": {"other": ["X"]}},
        {"retentionDays": 0},
        {"rateLimit": "lots"},
        {"unknownField": 1},
        {"retention_days": 5},
        {"organizationName": "   "},
    ]
    for change in bad:
        response = await api.client.patch(
            "/api/v1/account/policy", json=change, headers=api.headers()
        )
        assert response.status_code == 400, (change, response.text)
        assert response.json()["error"]["code"] == "invalid_request"
    not_object = await api.client.patch(
        "/api/v1/account/policy", json=["retentionDays"], headers=api.headers()
    )
    assert not_object.status_code == 400
    unchanged = await api.client.get("/api/v1/account/policy", headers=api.headers())
    assert unchanged.json()["retentionDays"] == 30


async def test_policy_patch_is_stored_and_audited(api: Any, comp: Any) -> None:
    response = await api.client.patch(
        "/api/v1/account/policy",
        json={"timezone": "Africa/Kampala", "quietHoursPolicy": "reject", "retentionDays": 7},
        headers=api.headers(),
    )
    assert response.status_code == 200
    got = (await api.client.get("/api/v1/account/policy", headers=api.headers())).json()
    assert (got["timezone"], got["quietHoursPolicy"], got["retentionDays"]) == (
        "Africa/Kampala",
        "reject",
        7,
    )
    entry = comp.rows(audit_log, audit_log.c.action == "account.policy_updated")[0]
    assert entry["details"] == {"fields": ["quietHoursPolicy", "retentionDays", "timezone"]}
