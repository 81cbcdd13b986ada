"""Pure parsers for the value types that appear in `gateway.toml`.

Each raises `ValueError` with a short, user-facing reason; config.py adds the key path.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """`"500ms"`, `"10s"`, `"1h30m"` or a number of seconds -> seconds (>= 0)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as \"10s\", got a boolean")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:
            raise ValueError("that number of seconds is too large") from None
    elif isinstance(value, str):
        text = value.strip()
        parts = _DURATION_PART.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            raise ValueError(f'"{value}" is not a duration (use e.g. "500ms", "10s", "5m", "1h")')
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    else:
        raise ValueError(f"expected a duration such as \"10s\", got {type(value).__name__}")
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError("a duration must be a finite number of seconds >= 0")
    return seconds


_SIZE = re.compile(r"(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?")
_UNIT_BYTES = {
    None: 1, "B": 1, "KB": 1000, "KiB": 1024, "MB": 1000**2, "MiB": 1024**2,
    "GB": 1000**3, "GiB": 1024**3,
}


def parse_size(value: object) -> int:
    """`"4MiB"`, `"512KiB"`, `"1MB"` or a whole number of bytes -> bytes (>= 1)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f'expected a size such as "4MiB" or a number of bytes, got {value!r}')
    if isinstance(value, int):
        size = value
    elif match := _SIZE.fullmatch(value.strip()):
        size = int(match.group(1)) * _UNIT_BYTES[match.group(2)]
    else:
        raise ValueError(f'"{value}" is not a size (use e.g. "512KiB", "4MiB" or bytes)')
    if not 1 <= size <= 1 << 40:
        raise ValueError("a size must be between 1 byte and 1 TiB")
    return size


@dataclass(frozen=True, slots=True)
class HostPort:
    """A listen address."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_host_port(value: str) -> HostPort:
    """`"127.0.0.1:4180"`, `"[::1]:4180"`, `"0.0.0.0:8080"` -> HostPort."""
    text = value.strip()
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]\s]+):(\d{1,5})", text)
    if not match:
        raise ValueError(f'"{value}" is not host:port (e.g. "127.0.0.1:4180")')
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65535:
        raise ValueError(f"port {port} is out of range 0-65535 (0 = any free port)")
    return HostPort(host, port)


def parse_cidr(value: str) -> IPNetwork:
    """`"10.0.0.0/8"` or a single address -> network."""
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f'"{value}" is not an IP address or CIDR (e.g. "10.0.0.0/8")') from None


def parse_base_url(value: str, *, allow_path: bool = True) -> str:
    """An absolute http(s) URL without query or fragment, trailing slash removed."""
    text = value.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f'"{value}" is not a valid URL') from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f'"{value}" must be an absolute http:// or https:// URL')
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f'"{value}" must not contain a query, fragment or user info')
    if any(c.isspace() or ord(c) < 0x20 or ord(c) > 0x7E for c in text):
        raise ValueError(f'"{value}" contains spaces, control or non-ASCII characters')
    path = parts.path.rstrip("/")
    if path and not allow_path:
        raise ValueError(f'"{value}" must be an origin only (scheme://host[:port]), no path')
    netloc = parts.netloc.lower()
    del port
    return f"{parts.scheme.lower()}://{netloc}{path}"


def parse_origin(value: str) -> str:
    """An origin `scheme://host[:port]`, normalised for comparison with an `Origin` header."""
    return origin_of(parse_base_url(value, allow_path=False))


def origin_of(url: str) -> str:
    """Scheme, host and non-default port of an absolute URL, lower-cased."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(parts.scheme.lower())
    port = parts.port
    suffix = f":{port}" if port is not None and port != default else ""
    return f"{parts.scheme.lower()}://{host}{suffix}"
