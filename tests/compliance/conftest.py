"""Compliance fixtures (helpers live in compliance_helpers)."""

from __future__ import annotations

from typing import Any

import pytest
from compliance_helpers import ComplianceApi


@pytest.fixture
def comp(api: Any) -> ComplianceApi:
    return ComplianceApi(api)
