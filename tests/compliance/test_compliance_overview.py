"""The compliance overview (the console's page): consents held per purpose, the newest consent
changes, the suppression list and the policy, for one account and mode."""

from __future__ import annotations

from typing import Any

from compliance_helpers import OTHER, PHONE, ComplianceApi

from msgine.server.compliance import compliance_overview


def _overview(api: Any, mode: str = "test", account_id: str | None = None) -> Any:
    return api.runtime.db.read(
        lambda conn: compliance_overview(
            conn, api.runtime.vault, account_id or api.account_id, mode
        )
    )


async def test_counts_recent_changes_suppressions_and_policy(comp: ComplianceApi) -> None:
    api = comp.api
    assert (await comp.consent(PHONE)).status_code == 200
    api.runtime.clock.advance(seconds=1)
    assert (await comp.consent(PHONE)).status_code == 200  # supersedes the first
    api.runtime.clock.advance(seconds=1)
    assert (await comp.consent(OTHER, purpose="transactional")).status_code == 200
    await comp.inbound("STOP", phone=OTHER)
    patched = await api.client.patch(
        "/api/v1/account/policy", json={"quietHoursStart": "09:00"}, headers=api.headers()
    )
    assert patched.status_code == 200, patched.text

    seen = _overview(api)
    assert seen.active_consents["marketing"] == 1
    assert seen.recent_consents[0].number == OTHER
    superseded = [c for c in seen.recent_consents if not c.active]
    assert [c.withdrawn_reason for c in superseded if c.number == PHONE] == ["superseded"]
    assert OTHER not in repr(seen.recent_consents[0])
    assert seen.suppressed_total == 1 and seen.suppressions[0].number == OTHER
    assert seen.policy.quiet_hours_start == "09:00"
    assert seen.policy.quiet_hours_policy == "defer"

    # The live world and other accounts hold none of it.
    live = _overview(api, mode="live")
    assert live.recent_consents == [] and live.suppressed_total == 0
    assert live.active_consents == {"marketing": 0, "transactional": 0}
    other, _ = api.new_account()
    assert _overview(api, account_id=other).recent_consents == []
