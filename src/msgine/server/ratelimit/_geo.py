"""Destination countries an account may send to."""

from __future__ import annotations

import re
from dataclasses import dataclass

_REGION = re.compile(r"[A-Z]{2}")


@dataclass(frozen=True)
class GeoPolicy:
    """Allowed destination regions (ISO 3166-1 alpha-2, as `phonenumbers` reports them).

    `None` allows every destination (the default). A restricted policy refuses numbers whose
    region is unknown or non-geographic, since nobody can say they are allowed.
    """

    allowed_countries: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.allowed_countries is None:
            return
        normalised = frozenset(c.strip().upper() for c in self.allowed_countries)
        bad = sorted(c for c in normalised if not _REGION.fullmatch(c))
        if bad:
            raise ValueError(f"not ISO 3166-1 alpha-2 country codes: {', '.join(bad)}")
        object.__setattr__(self, "allowed_countries", normalised)

    @classmethod
    def parse(cls, text: str | None) -> GeoPolicy:
        """From configuration: "UG,KE,TZ"; empty, None or "*" allow all."""
        if text is None or text.strip() in ("", "*"):
            return cls(None)
        return cls(frozenset(part for part in text.split(",") if part.strip()))

    def allows(self, region: str | None) -> bool:
        if self.allowed_countries is None:
            return True
        return region is not None and region.upper() in self.allowed_countries
