"""Quiet hours: the next instant a marketing message may be sent, in every zone of a number."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from msgine.server.compliance._quiet_hours import QuietWindow, is_quiet, next_allowed
from msgine.server.messages._numbers import timezones_of

UG = "+256701521269"
GB = "+447400123456"
NYC = "+12125550123"
US_TOLL_FREE = "+18005550199"
RU_MOBILE = "+79161234567"
AU_MOBILE = "+61412345678"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# --- single zone ------------------------------------------------------------------------------


def test_2300_local_waits_for_0800_local_next_day() -> None:
    zones = timezones_of(UG)
    assert zones == ["Africa/Kampala"]  # UTC+3, no DST
    now = utc(2026, 5, 10, 20, 0)  # 23:00 in Kampala
    assert next_allowed(now, zones) == utc(2026, 5, 11, 5, 0)  # 08:00 in Kampala
    assert is_quiet(now, zones)


def test_allowed_now_returns_none() -> None:
    now = utc(2026, 5, 10, 9, 0)  # 12:00 in Kampala
    assert next_allowed(now, timezones_of(UG)) is None
    assert not is_quiet(now, timezones_of(UG))


def test_window_start_is_inclusive_and_end_exclusive() -> None:
    zones = ["Africa/Kampala"]
    assert next_allowed(utc(2026, 5, 10, 5, 0), zones) is None  # 08:00:00 local
    assert next_allowed(utc(2026, 5, 10, 4, 59, 59), zones) == utc(2026, 5, 10, 5, 0)
    assert next_allowed(utc(2026, 5, 10, 17, 59, 59), zones) is None  # 20:59:59 local
    assert next_allowed(utc(2026, 5, 10, 18, 0), zones) == utc(2026, 5, 11, 5, 0)  # 21:00


def test_result_is_aware_utc_and_later_than_now() -> None:
    now = utc(2026, 5, 10, 22, 0, 0) + timedelta(microseconds=123)
    result = next_allowed(now, [])
    assert result == utc(2026, 5, 11, 8, 0)
    assert result is not None
    assert result.tzinfo is UTC
    assert result > now


def test_gb_number_in_winter_and_summer() -> None:
    zones = timezones_of(GB)
    assert "Europe/London" in zones
    assert next_allowed(utc(2026, 1, 15, 22, 30), zones) == utc(2026, 1, 16, 8, 0)  # GMT
    assert next_allowed(utc(2026, 7, 15, 6, 0), zones) == utc(2026, 7, 15, 7, 0)  # BST
    assert next_allowed(utc(2026, 7, 15, 19, 59), zones) is None  # 20:59 BST
    assert next_allowed(utc(2026, 7, 15, 20, 0), zones) == utc(2026, 7, 16, 7, 0)  # 21:00 BST


def test_now_in_another_offset_is_accepted() -> None:
    now = datetime(2026, 5, 10, 23, 0, tzinfo=timezone(timedelta(hours=3)))  # = 20:00 UTC
    assert next_allowed(now, ["Africa/Kampala"]) == utc(2026, 5, 11, 5, 0)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_allowed(datetime(2026, 5, 10, 20, 0), ["UTC"])
    with pytest.raises(ValueError, match="aware"):
        is_quiet(datetime(2026, 5, 10, 20, 0), ["UTC"])


# --- several zones ----------------------------------------------------------------------------


def test_one_zone_number_versus_two_zones() -> None:
    now = utc(2026, 1, 15, 12, 0)  # 07:00 New York, 04:00 Los Angeles
    assert timezones_of(NYC) == ["America/New_York"]
    assert next_allowed(now, timezones_of(NYC)) == utc(2026, 1, 15, 13, 0)
    both = ["America/New_York", "America/Los_Angeles"]
    assert next_allowed(now, both) == utc(2026, 1, 15, 16, 0)  # 08:00 in Los Angeles
    assert next_allowed(utc(2026, 1, 16, 1, 30), both) is None  # 20:30 NY, 17:30 LA
    assert next_allowed(utc(2026, 1, 16, 2, 0), both) == utc(2026, 1, 16, 16, 0)  # 21:00 NY


def test_multi_zone_numbers_from_phonenumbers() -> None:
    ru = timezones_of(RU_MOBILE)
    assert {"Europe/Moscow", "Asia/Anadyr"} <= set(ru)
    # Winter: the zones share only 06:00-09:00 UTC (Bucharest +2 opens, Anadyr +12 closes).
    assert next_allowed(utc(2026, 1, 15, 10, 0), ru) == utc(2026, 1, 16, 6, 0)
    assert next_allowed(utc(2026, 1, 15, 8, 59), ru) is None
    assert next_allowed(utc(2026, 1, 15, 9, 0), ru) == utc(2026, 1, 16, 6, 0)
    # Australian mobile: 8 zones; Cocos (+6:30) opens last, at 01:30 UTC.
    assert len(timezones_of(AU_MOBILE)) == 8
    assert next_allowed(utc(2026, 1, 15, 10, 0), timezones_of(AU_MOBILE)) == utc(2026, 1, 16, 1, 30)
    # A North American toll-free number maps to zones from Guam (+10) to Pago Pago (-11).
    toll_free = timezones_of(US_TOLL_FREE)
    assert {"Pacific/Guam", "Pacific/Pago_Pago", "America/St_Johns"} <= set(toll_free)
    assert next_allowed(utc(2026, 1, 15, 10, 0), toll_free) == utc(2026, 1, 15, 22, 0)


def test_duplicate_zones_are_harmless() -> None:
    zones = ["Africa/Kampala", "Africa/Kampala", "Africa/Nairobi"]
    assert next_allowed(utc(2026, 5, 10, 20, 0), zones) == utc(2026, 5, 11, 5, 0)


def test_zones_without_a_common_window_fall_back_to_the_zone_opening_last() -> None:
    # UTC, +8 and -8: every pair of 08-21 windows overlaps, the three never do.
    zones = ["UTC", "Asia/Shanghai", "America/Los_Angeles"]
    now = utc(2026, 1, 15, 22, 0)  # 22:00 UTC, 06:00 Shanghai, 14:00 Los Angeles
    # Own openings: UTC 08:00 next day, Shanghai 00:00 UTC, Los Angeles now: the latest wins.
    assert next_allowed(now, zones) == utc(2026, 1, 16, 8, 0)
    narrow = QuietWindow(time(9, 0), time(10, 0))
    assert next_allowed(utc(2026, 1, 15, 12, 0), ["UTC", "Asia/Tokyo"], narrow) == utc(
        2026, 1, 16, 9, 0
    )


# --- fallback zone ----------------------------------------------------------------------------


def test_no_zones_uses_fallback_zone() -> None:
    now = utc(2026, 5, 10, 23, 0)
    assert next_allowed(now, []) == utc(2026, 5, 11, 8, 0)
    assert next_allowed(now, [], fallback_zone="Africa/Kampala") == utc(2026, 5, 11, 5, 0)


def test_unknown_zones_are_ignored() -> None:
    now = utc(2026, 5, 10, 20, 0)
    assert next_allowed(now, ["Mars/Olympus", "Africa/Kampala"]) == utc(2026, 5, 11, 5, 0)
    late = utc(2026, 5, 10, 22, 0)
    assert next_allowed(late, ["Mars/Olympus", "../../etc/passwd"]) == utc(2026, 5, 11, 8, 0)


# --- daylight saving --------------------------------------------------------------------------


def test_new_york_spring_forward_day() -> None:
    zones = ["America/New_York"]  # 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC)
    now = utc(2026, 3, 8, 6, 0)  # 01:00 EST
    assert next_allowed(now, zones) == utc(2026, 3, 8, 12, 0)  # 08:00 EDT, not 13:00 UTC
    assert next_allowed(utc(2026, 3, 8, 1, 59), zones) is None  # 20:59 EST on 7 March


def test_window_opening_inside_a_dst_gap_opens_at_the_jump() -> None:
    # 02:30 never happens on 2026-03-08 in New York; the window opens at 03:00 EDT.
    window = QuietWindow(time(2, 30), time(5, 0))
    assert next_allowed(utc(2026, 3, 8, 6, 0), ["America/New_York"], window) == utc(2026, 3, 8, 7)
    assert next_allowed(utc(2026, 3, 8, 7, 0), ["America/New_York"], window) is None


def test_london_fall_back_day() -> None:
    zones = ["Europe/London"]  # 2026-10-25 02:00 BST -> 01:00 GMT (01:00 UTC)
    now = utc(2026, 10, 24, 23, 0)  # 00:00 BST
    assert next_allowed(now, zones) == utc(2026, 10, 25, 8, 0)  # 08:00 GMT, not 07:00 UTC


def test_window_inside_a_repeated_hour_opens_twice() -> None:
    window = QuietWindow(time(1, 30), time(1, 45))  # 01:30-01:45 happens in BST, then in GMT
    zones = ["Europe/London"]
    assert next_allowed(utc(2026, 10, 25, 0, 0), zones, window) == utc(2026, 10, 25, 0, 30)
    assert next_allowed(utc(2026, 10, 25, 0, 40), zones, window) is None
    assert next_allowed(utc(2026, 10, 25, 0, 50), zones, window) == utc(2026, 10, 25, 1, 30)


# --- windows ----------------------------------------------------------------------------------


def test_window_across_midnight() -> None:
    window = QuietWindow(time(22, 0), time(6, 0))
    assert next_allowed(utc(2026, 5, 10, 12, 0), ["UTC"], window) == utc(2026, 5, 10, 22, 0)
    assert next_allowed(utc(2026, 5, 10, 23, 0), ["UTC"], window) is None
    assert next_allowed(utc(2026, 5, 11, 5, 59), ["UTC"], window) is None
    assert next_allowed(utc(2026, 5, 11, 6, 0), ["UTC"], window) == utc(2026, 5, 11, 22, 0)


def test_window_until_midnight() -> None:
    window = QuietWindow(time(8, 0), time(0, 0))
    assert next_allowed(utc(2026, 5, 10, 23, 59), ["UTC"], window) is None
    assert next_allowed(utc(2026, 5, 11, 0, 0), ["UTC"], window) == utc(2026, 5, 11, 8, 0)


def test_invalid_windows() -> None:
    with pytest.raises(ValueError, match="differ"):
        QuietWindow(time(8, 0), time(8, 0))
    with pytest.raises(ValueError, match="tzinfo"):
        QuietWindow(time(8, 0, tzinfo=UTC), time(21, 0))


# --- brute force ------------------------------------------------------------------------------

_ZONE_POOL = [
    "UTC",
    "Europe/London",
    "Europe/Moscow",
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",  # -3:30
    "Asia/Kathmandu",  # +5:45
    "Australia/Eucla",  # +8:45
    "Australia/Lord_Howe",  # 30-minute DST
    "Pacific/Chatham",  # +12:45/+13:45
    "Pacific/Kiritimati",  # +14
    "Pacific/Pago_Pago",  # -11
    "Asia/Tokyo",
    "Africa/Kampala",
]
_QUARTER = timedelta(minutes=15)


def _allowed_everywhere(instant: datetime, zones: list[str], window: QuietWindow) -> bool:
    return all(window.allows(instant.astimezone(ZoneInfo(zone)).time()) for zone in zones)


def _first_allowed(now: datetime, zones: list[str], window: QuietWindow) -> datetime | None:
    """Every boundary here falls on a UTC quarter hour, so scanning quarter hours is exact."""
    for step in range(48 * 4 + 1):
        instant = now + step * _QUARTER
        if _allowed_everywhere(instant, zones, window):
            return instant
    return None


def test_matches_a_brute_force_scan_across_dst_changes() -> None:
    rng = random.Random(2026)
    windows = [
        QuietWindow(),
        QuietWindow(time(9, 30), time(17, 45)),
        QuietWindow(time(20), time(7)),
    ]
    base = utc(2026, 1, 1)
    checked = 0
    for _ in range(250):
        # Quarter-hour instants through 2026, denser around the March and October changes.
        day = rng.choice([rng.randrange(365), rng.randrange(64, 92), rng.randrange(295, 312)])
        now = base + timedelta(days=day) + rng.randrange(96) * _QUARTER
        zones = rng.sample(_ZONE_POOL, rng.randint(1, 3))
        window = rng.choice(windows)
        expected = _first_allowed(now, zones, window)
        if expected is None:
            continue  # no common window: covered by the fallback tests
        checked += 1
        assert next_allowed(now, zones, window) == (None if expected == now else expected), (
            now,
            zones,
            window,
        )
    assert checked > 150
