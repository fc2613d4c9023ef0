"""Differential test of segment counting against the npm package ``sms-segments-calculator``.

The package is an independent implementation of GSM 03.38 / UCS-2 segmenting. It is installed
with npm once into pytest's cache directory and fed every string in one node process.

Known, deliberate disagreements (asserted below, so a change on either side is noticed):
- Empty text: the oracle reports 1 segment; MsGine reports 0 (nothing to send or bill; the send
  path rejects empty messages anyway).
- The oracle never splits a grapheme cluster (e.g. a ZWJ family emoji) across UCS-2 segments.
  GSM 03.40 concatenation works on 16-bit units and handsets reassemble the parts before
  display, so MsGine only keeps surrogate pairs whole, which can save a segment.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from msgine.server.messages._text import segment_info

ORACLE_PACKAGE = "sms-segments-calculator@1.3.0"
EMOJI = "\U0001f600"
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"

_SCRIPT = """
const { SegmentedMessage } = require('sms-segments-calculator');
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const out = JSON.parse(input).map((text) => {
    const message = new SegmentedMessage(text);
    return [message.encodingName, message.segmentsCount];
  });
  process.stdout.write(JSON.stringify(out));
});
"""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"segment oracle required in CI: {reason}")
    pytest.skip(f"segment oracle unavailable: {reason}")


@pytest.fixture(scope="module")
def oracle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node or npm is not installed")
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    directory = (
        Path(cache.mkdir("sms-segments-oracle"))
        if cache is not None
        else tmp_path_factory.mktemp("sms-segments-oracle")
    )
    if not (directory / "node_modules" / "sms-segments-calculator").is_dir():
        (directory / "package.json").write_text('{"private": true}')
        try:
            subprocess.run(
                [str(npm), "install", "--no-audit", "--no-fund", "--silent", ORACLE_PACKAGE],
                cwd=directory,
                check=True,
                capture_output=True,
                timeout=180,
            )
        except (subprocess.SubprocessError, OSError) as error:
            _unavailable(f"npm install {ORACLE_PACKAGE} failed: {type(error).__name__}")
    return directory


def _ask(directory: Path, texts: list[str]) -> list[tuple[str, int]]:
    result = subprocess.run(
        ["node", "-e", _SCRIPT],
        cwd=directory,
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
        timeout=60,
    )
    return [(encoding, segments) for encoding, segments in json.loads(result.stdout)]


EDGE_CASES = [
    "a",
    "a" * 160,
    "a" * 161,
    "a" * 306,
    "a" * 307,
    "a" * 459,
    "a" * 460,
    "€" * 80,
    "€" * 81,
    "a" * 159 + "€",
    "a" * 158 + "€",
    "a" * 152 + "€" + "a" * 151,
    "a" * 152 + "€" + "a" * 152,
    "a" * 153 + "€" + "a" * 152,
    "a" * 305 + "€",
    "[" * 77 + "a" * 152,
    "ж" * 70,
    "ж" * 71,
    "ж" * 134,
    "ж" * 135,
    "a" * 69 + "ж",
    "€" * 69 + "ж",
    EMOJI * 35,
    EMOJI * 36,
    "ж" * 66 + EMOJI + "ж" * 66,
    "ж" * 65 + EMOJI + "ж" * 67,
    FAMILY,
    "Hi " + FAMILY + " there",
    "Ç and ç",
    "\f^{}\\[~]|€",
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./:;<=>?¡ÄÖÑÜ§¿äöñüà",
    "Hello \t world",
    "`backtick`",
    "Caf\u00e9",
    "Cafe\u0301",
]

# Where the oracle differs on purpose: text -> (oracle's answer, MsGine's answer).
DOCUMENTED_DISAGREEMENTS = {
    "": (("GSM-7", 1), ("GSM-7", 0)),
    "ж" * 60 + FAMILY + "ж" * 60: (("UCS-2", 3), ("UCS-2", 2)),
}

# Every entry is a grapheme of its own (no combining marks, joiners, modifiers, regional
# indicators or CR LF pairs), so the oracle's grapheme packing equals code-point packing.
_POOLS = [
    "abcXYZ019 .,!?@£$_\n",
    "abc €{}[]^~|\\",
    "abcж€ 中",
    f"ab€ж{EMOJI}\U0001f680",
    "éüÑ§¿ΔΩ",
]


def _random_texts(count: int) -> list[str]:
    rng = random.Random(1602)
    texts = []
    for _ in range(count):
        pool = rng.choice(_POOLS)
        text = "".join(rng.choice(pool) for _ in range(rng.randint(1, 480)))
        texts.append(text.replace("\r\n", "\n"))
    return texts


def _ours(text: str) -> tuple[str, int]:
    info = segment_info(text)
    return info.encoding, info.segments


def test_oracle_agrees_on_edge_cases_and_random_text(oracle: Path) -> None:
    texts = EDGE_CASES + _random_texts(400)
    answers = _ask(oracle, texts)
    mismatches = [
        (index, len(text), answer, _ours(text))
        for index, (text, answer) in enumerate(zip(texts, answers, strict=True))
        if answer != _ours(text)
    ]
    assert mismatches == []


def test_documented_disagreements_still_hold(oracle: Path) -> None:
    texts = list(DOCUMENTED_DISAGREEMENTS)
    answers = _ask(oracle, texts)
    for text, answer in zip(texts, answers, strict=True):
        theirs, ours = DOCUMENTED_DISAGREEMENTS[text]
        assert answer == theirs
        assert _ours(text) == ours
