"""Where a browser goes for a `Location` header (WHATWG URL parsing, the parts that matter).

Open-redirect advisories live in the gap between a server's check and the browser's
parser: browsers drop tabs and newlines anywhere, trim leading C0 controls and spaces, and
read `\\` as `/` in http(s) URLs, so `/\\evil`, `/\\t/evil` and ` //evil` all leave the site.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urljoin, urlsplit

_TAB_OR_NEWLINE = re.compile("[\t\n\r]")
_C0_OR_SPACE = "".join(chr(c) for c in range(0x21))


def resolve(base: str, location: str) -> str:
    """The absolute URL a browser at `base` navigates to for `location`."""
    cleaned = _TAB_OR_NEWLINE.sub("", location.strip(_C0_OR_SPACE))
    scheme = urlsplit(cleaned).scheme.lower() if ":" in cleaned.split("/", 1)[0] else ""
    if scheme in ("", "http", "https"):
        cleaned = cleaned.replace("\\", "/")
    return urljoin(base, cleaned)


def origin(url: str) -> str:
    """scheme://host[:port] with default ports dropped, lower-cased; opaque schemes as-is."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return f"{scheme}:"
    try:
        port = parts.port
    except ValueError:
        return "invalid:"
    host = (parts.hostname or "").lower()
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def query_value(url: str, name: str) -> str | None:
    """One query parameter of an absolute URL, decoded; None when absent."""
    values = parse_qs(urlsplit(url).query).get(name)
    return values[0] if values else None
