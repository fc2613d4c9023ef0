"""Analytics: per-day message counters kept as messages change state, and reports on them.

``count`` is called by the message lifecycle in the transaction of each change; ``Analytics``
(or ``overview``/``daily`` on a connection) reads them for the API and the console. Counters
hold only counts and costs per account, mode, channel, UTC day and currency: no personal data,
so retention and erasure leave them as they are.
"""

from msgine.server.analytics._counters import CHANNEL, COUNTS, count
from msgine.server.analytics._period import (
    DEFAULT_DAYS,
    MAX_DAYS,
    MIN_DAYS,
    Period,
    last_days,
    parse_day,
    period_of,
)
from msgine.server.analytics._report import (
    ChannelStats,
    Daily,
    DailyPoint,
    Overview,
    daily,
    overview,
)
from msgine.server.analytics._service import Analytics

__all__ = [
    "CHANNEL",
    "COUNTS",
    "DEFAULT_DAYS",
    "MAX_DAYS",
    "MIN_DAYS",
    "Analytics",
    "ChannelStats",
    "Daily",
    "DailyPoint",
    "Overview",
    "Period",
    "count",
    "daily",
    "last_days",
    "overview",
    "parse_day",
    "period_of",
]
