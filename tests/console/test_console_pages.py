"""The console's data pages over HTTP (in process, both databases): each renders for each role,
the role table decides every action, numbers stay masked unless revealed (audited), and what a
request carries comes back escaped."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from console_support import User, csrf_of, make_user, sign_in
from msgine.server.storage._tables import recipients

NUMBER = "+256701521269"
MASKED = "+256 70* *** 269"
PAGES = [
    "/console/",
    "/console/?mode=test",
    "/console/messages",
    "/console/webhooks",
    "/console/compliance",
    "/console/compliance?mode=test",
    "/console/audit",
    "/console/carriers",
]
XSS = "<script>alert(1)</script>"


@asynccontextmanager
async def browser_of(api: Any, role: str) -> AsyncIterator[tuple[httpx.AsyncClient, str, User]]:
    """A client signed in as a new user of ``role``, its CSRF token, and the user."""
    user = make_user(api.runtime, api.account_id, email=f"{role}@example.com", role=role)
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client, await sign_in(client, user), user


async def _message_with_delivery(api: Any) -> tuple[str, str, str]:
    """A delivered message whose event went to an endpoint that is not listening: (message id,
    endpoint id, delivery id)."""
    created = await api.client.post(
        "/api/v1/webhooks", json={"url": "https://127.0.0.1:9/hook"}, headers=api.headers()
    )
    assert created.status_code == 201, created.text
    sent = await api.send(to=NUMBER)
    await api.drain()
    listed = await api.client.get(
        f"/api/v1/webhooks/{created.json()['id']}/deliveries", headers=api.headers()
    )
    delivery = listed.json()["deliveries"][-1]["id"]
    return sent.json()["id"], created.json()["id"], delivery


@pytest.fixture
def settings(tmp_path: Any, database_url: str | None) -> Any:
    from support import make_settings

    return make_settings(tmp_path, database_url, webhook_allow_private=True)


@pytest.mark.parametrize("role", ["owner", "developer", "viewer"])
async def test_every_page_renders_for_every_role_with_numbers_masked(api: Any, role: str) -> None:
    message_id, endpoint_id, _ = await _message_with_delivery(api)
    pages = [*PAGES, f"/console/messages/{message_id}", f"/console/webhooks/{endpoint_id}"]
    async with browser_of(api, role) as (client, _, _user):
        for path in pages:
            page = await client.get(path)
            assert page.status_code == 200, (path, page.text)
            assert NUMBER not in page.text, path
            assert page.headers["content-security-policy"].startswith("default-src 'self'")
        detail = (await client.get(f"/console/messages/{message_id}")).text
        assert MASKED in detail
        hook = (await client.get(f"/console/webhooks/{endpoint_id}")).text
        may_act = role != "viewer"
        assert ('name="kind" value="recipient"' in detail) is may_act
        assert (f'action="/console/webhooks/{endpoint_id}/test"' in hook) is may_act
        assert ("rotate-secret" in hook) is may_act


async def test_a_viewer_is_refused_every_action(api: Any) -> None:
    message_id, endpoint_id, delivery_id = await _message_with_delivery(api)
    recipient = re.search(r'value="(rcp_[^"]+)"', await _detail_as_owner(api, message_id))
    assert recipient is not None
    async with browser_of(api, "viewer") as (client, token, _):
        for path, data in [
            (f"/console/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay", {}),
            (f"/console/webhooks/{endpoint_id}/test", {"event": "message.sent"}),
            (f"/console/webhooks/{endpoint_id}/rotate-secret", {"grace_hours": "1"}),
            ("/console/reveal", {"kind": "recipient", "ref": recipient.group(1)}),
        ]:
            answer = await client.post(path, data={"csrf_token": token, **data})
            assert answer.status_code == 403, path
            assert NUMBER not in answer.text and "whsec_" not in answer.text
    endpoint = await api.client.get(f"/api/v1/webhooks/{endpoint_id}", headers=api.headers())
    assert endpoint.json()["previousSecretExpiresAt"] is None  # not rotated


async def _detail_as_owner(api: Any, message_id: str) -> str:
    async with browser_of(api, "owner") as (client, _, _user):
        return (await client.get(f"/console/messages/{message_id}")).text


async def test_replay_test_event_and_rotation_through_the_console(api: Any) -> None:
    _, endpoint_id, delivery_id = await _message_with_delivery(api)
    async with browser_of(api, "developer") as (client, token, user):
        without = await client.post(
            f"/console/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay"
        )
        assert without.status_code == 403  # no CSRF token
        replayed = await client.post(
            f"/console/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay",
            data={"csrf_token": token},
        )
        assert replayed.status_code == 303
        assert replayed.headers["location"].endswith("?done=replayed")
        tested = await client.post(
            f"/console/webhooks/{endpoint_id}/test",
            data={"csrf_token": token, "event": "message.failed"},
        )
        assert tested.status_code == 303
        page = await client.get(tested.headers["location"])
        assert "A test event was queued" in page.text
        rotated = await client.post(
            f"/console/webhooks/{endpoint_id}/rotate-secret",
            data={"csrf_token": token, "grace_hours": "2"},
        )
        assert rotated.status_code == 200
        secret = re.search(r'id="new-secret" class="secret">(whsec_[^<]+)<', rotated.text)
        assert secret is not None
        again = await client.get(f"/console/webhooks/{endpoint_id}")
        assert secret.group(1) not in again.text  # shown once
    deliveries = await api.client.get(
        f"/api/v1/webhooks/{endpoint_id}/deliveries", headers=api.headers()
    )
    events = [d["event"] for d in deliveries.json()["deliveries"]]
    assert events.count("message.sent") == 2 and "message.failed" in events
    audit = await api.client.get("/api/v1/audit", headers=api.headers())
    done = {(e["action"], e["actor"]) for e in audit.json()["entries"]}
    actor = f"user:{user.id}"
    for action in (
        "webhook.delivery_replayed",
        "webhook.test_event_sent",
        "webhook.secret_rotated",
    ):
        assert (action, actor) in done


async def test_search_by_number_is_a_post_and_a_reveal_is_audited(api: Any) -> None:
    message_id, _, _ = await _message_with_delivery(api)
    other = await api.send(to="+256772000111")
    async with browser_of(api, "owner") as (client, token, user):
        found = await client.post(
            "/console/messages", data={"csrf_token": token, "recipient": "+256 701 521 269"}
        )
        assert found.status_code == 200
        assert message_id in found.text and other.json()["id"] not in found.text
        assert NUMBER not in found.text
        detail = await client.get(f"/console/messages/{message_id}")
        assert "delivered" in detail.text and "message.sent" in detail.text
        ref = re.search(r'name="ref" value="(rcp_[^"]+)"', detail.text)
        assert ref is not None
        shown = await client.post(
            "/console/reveal",
            data={"csrf_token": csrf_of(detail.text), "kind": "recipient", "ref": ref.group(1)},
            headers={"accept": "application/json"},
        )
        assert shown.json() == {"number": NUMBER}
        # Another account's recipient, by its id: not found, and nothing shown.
        _, their_key = api.new_account()
        theirs = await api.send(key=their_key, to="+256772000222")
        their_ref = api.runtime.db.read(
            lambda conn: conn.execute(
                sa.select(recipients.c.id).where(recipients.c.message_id == theirs.json()["id"])
            ).scalar_one()
        )
        refused = await client.post(
            "/console/reveal",
            data={"csrf_token": token, "kind": "recipient", "ref": their_ref},
            headers={"accept": "application/json"},
        )
        assert refused.status_code == 404 and refused.json() == {"number": None}
    audit = await api.client.get("/api/v1/audit", headers=api.headers())
    reveals = [e for e in audit.json()["entries"] if e["action"] == "console.number_reveal"]
    assert [(e["target"], e["outcome"]) for e in reveals] == [
        (f"recipient:{their_ref}", "not_found"),
        (f"recipient:{ref.group(1)}", "success"),
    ]
    assert {e["actor"] for e in reveals} == {f"user:{user.id}"}
    assert NUMBER not in str(reveals)


ESCAPE_PATHS = [
    f"/console/messages/{XSS}",
    f"/console/messages?id={XSS}",
    f"/console/messages?status={XSS}",
    f"/console/messages?since={XSS}",
    f"/console/messages?cursor={XSS}",
    f"/console/messages?mode={XSS}",
    f"/console/webhooks/{XSS}",
    f"/console/webhooks/we_x?status={XSS}&done={XSS}",
    f"/console/compliance?mode={XSS}",
    f"/console/?mode={XSS}",
    "/console/audit?before=-1",
    "/console/audit?before=x",
]


async def test_request_values_come_back_escaped_never_as_a_500(api: Any) -> None:
    async with browser_of(api, "viewer") as (client, token, _user):
        for path in ESCAPE_PATHS:
            page = await client.get(path)
            assert page.status_code in (200, 400, 404), (path, page.text)
            assert "<script>alert" not in page.text, path
        kept = await client.get(f"/console/messages?id={XSS}")
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in kept.text  # in the form, escaped
        posted = await client.post(
            "/console/messages", data={"csrf_token": token, "recipient": XSS}
        )
        assert posted.status_code == 400 and "<script>alert" not in posted.text


async def test_only_compliance_managers_take_a_number_off_the_suppression_list(api: Any) -> None:
    stop = await api.client.post(
        "/api/v1/simulator/inbound",
        json={"from": NUMBER, "message": "STOP"},
        headers=api.headers(),
    )
    assert stop.status_code == 201, stop.text
    async with browser_of(api, "developer") as (client, token, _user):
        page = await client.get("/console/compliance?mode=test")
        assert MASKED in page.text and "/compliance/suppressions/remove" not in page.text
        ref = re.search(r'name="ref" value="(test:[0-9a-f]+)"', page.text)
        assert ref is not None  # the reveal form names it
        refused = await client.post(
            "/console/compliance/suppressions/remove", data={"csrf_token": token, "ref": ref[1]}
        )
        assert refused.status_code == 403
    async with browser_of(api, "owner") as (client, token, user):
        removed = await client.post(
            "/console/compliance/suppressions/remove", data={"csrf_token": token, "ref": ref[1]}
        )
        assert removed.status_code == 303
        page = await client.get(removed.headers["location"])
        assert "taken off the suppression list" in page.text and MASKED not in page.text
        again = await client.post(
            "/console/compliance/suppressions/remove", data={"csrf_token": token, "ref": ref[1]}
        )
        assert again.status_code == 404
    listed = await api.client.get("/api/v1/suppressions", headers=api.headers())
    assert listed.json()["total"] == 0
    audit = await api.client.get("/api/v1/audit", headers=api.headers())
    assert any(
        e["action"] == "suppression.removed" and e["actor"] == f"user:{user.id}"
        for e in audit.json()["entries"]
    )
