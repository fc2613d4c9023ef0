"""The analytics service: the reports of one account and mode, for the API and the console."""

from __future__ import annotations

from datetime import UTC, date
from typing import TYPE_CHECKING

from msgine.server.analytics import _report
from msgine.server.analytics._period import DEFAULT_DAYS, last_days, period_of
from msgine.server.analytics._report import Daily, Overview

if TYPE_CHECKING:
    from msgine.server.runtime import Runtime


def _today(runtime: Runtime) -> date:
    return runtime.now().astimezone(UTC).date()


class Analytics:
    """Reads the counters on the runtime's read pool; "today" is the runtime clock's UTC day.

    Entry points pass what their caller may see (the key's or the signed-in user's account
    and mode); the service never widens it.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def overview(
        self, account_id: str, mode: str, *, start: str | None = None, end: str | None = None
    ) -> Overview:
        """Totals of the days ``start`` to ``end`` (dates, both included; see ``period_of``)."""
        runtime = self._runtime
        period = period_of(start, end, today=_today(runtime))
        currency = runtime.settings.currency
        return await runtime.db.aread(
            lambda conn: _report.overview(conn, account_id, mode, period, default_currency=currency)
        )

    async def daily(self, account_id: str, mode: str, *, days: int = DEFAULT_DAYS) -> Daily:
        """Each of the last ``days`` days (1-90), today included, oldest first."""
        runtime = self._runtime
        period = last_days(days, today=_today(runtime))
        currency = runtime.settings.currency
        return await runtime.db.aread(
            lambda conn: _report.daily(conn, account_id, mode, period, default_currency=currency)
        )
