"""`prefers_html`: which `Accept` headers count as a browser page load
(docs/reference.md#unauthenticated-answers)."""

from __future__ import annotations

import pytest

from gateway.respond import prefers_html


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
        ("text/html", True),
        ("TEXT/HTML", True),
        ("application/xhtml+xml", True),
        ("text/html, application/json", True),
        ("application/json;q=0.5, text/html", True),
        ("text/html ; q=0.9 , application/json;q=0.8", True),
        ("application/json", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0", False),
        ("text/html;q=abc", False),
        ("*/*", False),
        ("text/*", False),
        ("", False),
    ],
    ids=[
        "browser-default", "html-only", "upper-case", "xhtml", "equal-weight",
        "json-rated-lower", "spaces-around-params", "json-only", "html-rated-lower",
        "html-refused", "bad-quality", "anything", "text-wildcard", "empty",
    ],
)
def test_prefers_html(accept: str, expected: bool) -> None:
    assert prefers_html(accept) is expected
