"""Request text that is stored and later shown to people: names, descriptions, sources.

Such text ends up in terminals (``msgine keys list``), logs and exports. Control characters
(newlines, terminal escapes) and Unicode format characters (bidirectional overrides) in it could
forge lines or disguise text there, and have no use in a label, so they are refused at the API.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, StrictStr

_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def _plain(value: str) -> str:
    if any(unicodedata.category(ch) in _HIDDEN for ch in value):
        raise ValueError("must not contain control, format or line-separator characters")
    return value


#: A one-line label: a string without control or invisible format characters.
PlainText = Annotated[StrictStr, AfterValidator(_plain)]
