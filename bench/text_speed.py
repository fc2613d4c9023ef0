"""Throughput of MsGine's per-message text and number work on the send path.

Sanitising + validating, segment counting and number normalising, each measured alone, for a
short GSM-7 text, a long UCS-2 text and an E.164 number.

    python bench/text_speed.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from msgine.server.messages._numbers import normalize_number
from msgine.server.messages._text import segment_info, validate_content

SHORT = "Your code is 482913. It expires in 10 minutes. Do not share it.\r\n"
LONG = ("Привет! Скидка 20% на всё 🎉 до воскресенья. " * 10).strip()
NUMBER = "+44 7400 123456"


def _rate(work: Callable[[], object], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(200):
            work()
        count += 200
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    seconds = parser.parse_args().seconds
    cases: dict[str, Callable[[], object]] = {
        "validate_content (short GSM-7)": lambda: validate_content(SHORT),
        "validate_content (long UCS-2)": lambda: validate_content(LONG),
        "segment_info (short GSM-7)": lambda: segment_info(SHORT),
        "segment_info (long UCS-2)": lambda: segment_info(LONG),
        "normalize_number": lambda: normalize_number(NUMBER),
        "all three (short message)": lambda: (
            segment_info(validate_content(SHORT)),
            normalize_number(NUMBER),
        ),
    }
    for name, work in cases.items():
        print(f"{name:<34} {_rate(work, seconds):>12,.0f} /s")


if __name__ == "__main__":
    main()
