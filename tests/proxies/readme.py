"""The README's forward-auth configurations, read from the README itself so that the tests
and the documentation cannot drift apart.

Each configuration is the fenced block right after a `<!-- forward-auth:NAME -->` marker.
Tests adapt one only by replacing addresses, and every replacement must find its text: a
README edit that breaks the mapping fails loudly instead of testing something else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
_FENCED = re.compile(r"\A\s*```(?P<language>[\w-]+)\n(?P<body>.*?)^```", re.DOTALL | re.MULTILINE)


def snippet(name: str, language: str) -> str:
    """The fenced block after `<!-- forward-auth:NAME -->`, which must be in `language`."""
    text = README.read_text(encoding="utf-8")
    marker = f"<!-- forward-auth:{name} -->"
    found = text.count(marker)
    assert found == 1, f"README.md has {found} {marker!r} markers, expected exactly one"
    block = _FENCED.match(text.split(marker, 1)[1])
    assert block is not None, f"README.md: no fenced block right after {marker!r}"
    assert block["language"] == language, (
        f"README.md: the block after {marker!r} is {block['language']!r}, expected {language!r}"
    )
    return block["body"]


def substitute(text: str, replacements: Mapping[str, str], *, what: str) -> str:
    """Every key of `replacements` replaced by its value, all at once (a new port must not be
    mistaken for an old address); each key must occur in `text`."""
    missing = [old for old in replacements if old not in text]
    assert not missing, (
        f"the README's {what} configuration no longer contains {missing}; the forward-auth "
        f"tests map these to the addresses they run on:\n{text}"
    )
    pattern = re.compile("|".join(map(re.escape, sorted(replacements, key=len, reverse=True))))
    return pattern.sub(lambda match: replacements[match.group(0)], text)


def addresses(text: str) -> set[str]:
    """Every `127.0.0.1:PORT` in `text`."""
    return set(re.findall(r"127\.0\.0\.1:\d+", text))
