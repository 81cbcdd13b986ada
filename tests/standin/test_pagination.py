"""Paging arithmetic and the Link header, checked against ory/x's own snapshots
(docs/standin.md#sessions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.standin.pagination import Page, decode_token, encode_token, link_header, parse_page

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ory"


def test_link_header_of_a_first_page() -> None:
    header = link_header("/sessions", {}, 600, Page(0, 250))
    assert header == (
        "</sessions?page=1&page_size=250&page_token=eyJvZmZzZXQiOiIyNTAiLCJ2IjoyfQ&per_page=250>;"
        ' rel="next",'
        "</sessions?page=2&page_size=250&page_token=eyJvZmZzZXQiOiI1MDAiLCJ2IjoyfQ&per_page=250>;"
        ' rel="last"'
    )


def test_link_header_matches_oryx_snapshot() -> None:
    """Kratos' own snapshot of a first page's Link header (tests/fixtures/ory/README.md)."""
    snapshot = json.loads((FIXTURES / "link-header-first-page-split.kratos-oryx-snapshot.json")
                          .read_text(encoding="utf-8"))
    header = link_header("http://example.com", {}, 150, Page(0, 50))
    assert header.split("; ") == snapshot


def _rels(header: str) -> list[tuple[str, int, int]]:
    """(rel, page_size, offset) of every entry."""
    found = []
    for entry in header.split(","):
        url, rel = entry.split("; ")
        query = dict(part.split("=") for part in url[url.index("?") + 1 : -1].split("&"))
        found.append((rel[5:-1], int(query["page_size"]), decode_token(query["page_token"])))
    return found


@pytest.mark.parametrize(
    ("total", "page", "expected"),
    [
        pytest.param(3, Page(0, 5), [("first", 3, 0)], id="one-page-sized-to-total"),
        pytest.param(3, Page(0, 3), [("first", 3, 0)], id="exactly-one-page"),
        pytest.param(3, Page(0, 2), [("next", 2, 2), ("last", 2, 2)], id="first-of-two"),
        pytest.param(3, Page(1, 2), [("first", 2, 0), ("prev", 2, 0)], id="last-of-two"),
        pytest.param(
            10,
            Page(2, 2),
            [("first", 2, 0), ("next", 2, 6), ("prev", 2, 2), ("last", 2, 8)],
            id="middle",
        ),
        pytest.param(
            0,
            Page(0, 250),
            [("first", 250, 0), ("next", 250, 250), ("prev", 250, -250)],
            id="empty",
        ),
    ],
)
def test_link_header_rels_depend_on_position(
    total: int, page: Page, expected: list[tuple[str, int, int]]
) -> None:
    assert _rels(link_header("/sessions", {}, total, page)) == expected


def test_empty_list_prev_link_has_negative_page() -> None:
    assert "page=-1&" in link_header("/sessions", {}, 0, Page(0, 250))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param({}, Page(0, 250), id="legacy-defaults"),
        pytest.param({"page": "3", "per_page": "10"}, Page(3, 10), id="legacy"),
        pytest.param({"per_page": "5000"}, Page(0, 1000), id="legacy-clamped"),
        pytest.param({"page": "-2"}, Page(0, 250), id="legacy-negative-page"),
        pytest.param({"page_size": "x"}, Page(0, 250), id="token-mode-bad-size"),
        pytest.param({"page_size": "-1"}, Page(0, 1), id="token-mode-size-floor"),
        pytest.param({"page_size": "10", "page_token": encode_token(25)}, Page(2, 10), id="token"),
        pytest.param({"page_token": "not base64!"}, Page(0, 250), id="undecodable-token"),
        pytest.param({"page": "4", "page_size": "10"}, Page(0, 10), id="token-mode-wins"),
    ],
)
def test_parse_page_modes(query: dict[str, str], expected: Page) -> None:
    assert parse_page(query) == expected
