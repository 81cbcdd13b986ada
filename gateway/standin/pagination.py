"""Paging of `GET /sessions`: ory/x migrationpagination parsing and its Link header
(docs/standin.md#sessions)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote_plus

DEFAULT_SIZE = 250
MAX_SIZE = 1000


@dataclass(frozen=True)
class Page:
    number: int
    size: int

    @property
    def offset(self) -> int:
        return self.number * self.size


def encode_token(offset: int) -> str:
    raw = json.dumps({"offset": str(offset), "v": 2}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_token(token: str) -> int:
    """An undecodable token silently means offset 0, as in ory/x."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        return int(json.loads(raw)["offset"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        return 0


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def parse_page(query: Mapping[str, str]) -> Page:
    """Token mode when `page_token` or `page_size` is present, else legacy `page`/`per_page`."""
    if "page_token" in query or "page_size" in query:
        size = min(max(_int(query.get("page_size"), DEFAULT_SIZE), 1), MAX_SIZE)
        offset = decode_token(query.get("page_token", ""))
        return Page(max(offset // size, 0) if offset > 0 else 0, size)
    size = min(max(_int(query.get("per_page"), DEFAULT_SIZE), 1), MAX_SIZE)
    return Page(max(_int(query.get("page"), 0), 0), size)


def _div(a: int, b: int) -> int:
    """Go integer division truncates toward zero."""
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b > 0) else -quotient


def _link(base: str, query: Mapping[str, str], rel: str, size: int, offset: int) -> str:
    params = dict(query)
    params.update(
        page=str(_div(offset, size)),
        page_size=str(size),
        page_token=encode_token(offset),
        per_page=str(size),
    )
    encoded = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in sorted(params.items()))
    return f'<{base}?{encoded}>; rel="{rel}"'


def link_header(base: str, query: Mapping[str, str], total: int, page: Page) -> str:
    """`pagination.HeaderWithFormatter`: which rels appear depends on where the page sits."""
    size, offset = page.size, page.offset
    last = total - size if total % size == 0 else (total // size) * size
    here = _div(offset, size)
    if offset >= last:
        if total == 0:
            rels = [
                ("first", size, 0),
                ("next", size, (here + 1) * size),
                ("prev", size, (here - 1) * size),
            ]
        elif total <= size:
            rels = [("first", total, 0)]
        else:
            rels = [("first", size, 0), ("prev", size, last - size)]
    elif offset < size:
        rels = [("next", size, size), ("last", size, last)]
    else:
        rels = [
            ("first", size, 0),
            ("next", size, (here + 1) * size),
            ("prev", size, (here - 1) * size),
            ("last", size, last),
        ]
    return ",".join(_link(base, query, rel, s, o) for rel, s, o in rels)
