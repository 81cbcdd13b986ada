"""Sessions as people read them: which browser on which system, where, since when."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gateway.session import parse_timestamp

_BROWSERS = (
    ("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("HeadlessChrome", "Chrome"),
    ("Chrome/", "Chrome"), ("Chromium/", "Chromium"), ("Version/", "Safari"),
    ("curl/", "curl"), ("python-requests", "Python requests"), ("aiohttp", "Python aiohttp"),
)
_SYSTEMS = (
    ("Windows", "Windows"), ("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"),
    ("CrOS", "ChromeOS"), ("Mac OS X", "macOS"), ("Macintosh", "macOS"), ("Linux", "Linux"),
)


def describe_user_agent(user_agent: str | None) -> str:
    """`Mozilla/5.0 (X11; Linux x86_64) … Chrome/120 …` -> `Chrome on Linux`."""
    if not user_agent:
        return "Unknown device"
    browser = next((name for token, name in _BROWSERS if token in user_agent), None)
    system = next((name for token, name in _SYSTEMS if token in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or f"Browser on {system}"
    return re.split(r"[/\s]", user_agent, maxsplit=1)[0][:40] or "Unknown device"


@dataclass(frozen=True, slots=True)
class DeviceView:
    """One device recorded at login."""

    ip_address: str
    user_agent: str
    label: str
    location: str


@dataclass(frozen=True, slots=True)
class SessionView:
    """One session for the sessions page and its JSON."""

    id: str
    aal: str
    authenticated_at: float | None
    expires_at: float | None
    devices: tuple[DeviceView, ...]
    current: bool

    @property
    def label(self) -> str:
        """The first device's readable name."""
        return self.devices[0].label if self.devices else "Unknown device"


def session_view(document: dict[str, Any], *, current: bool) -> SessionView | None:
    """Ory session JSON -> SessionView; None when it has no usable id."""
    session_id = document.get("id")
    if not isinstance(session_id, str) or not session_id:
        return None
    devices = document.get("devices") if isinstance(document.get("devices"), list) else []
    aal = document.get("authenticator_assurance_level")
    return SessionView(
        id=session_id,
        aal=aal if isinstance(aal, str) else "",
        authenticated_at=parse_timestamp(document.get("authenticated_at")),
        expires_at=parse_timestamp(document.get("expires_at")),
        devices=tuple(_device(item) for item in devices or () if isinstance(item, dict)),
        current=current,
    )


def _device(item: dict[str, Any]) -> DeviceView:
    agent = item.get("user_agent") if isinstance(item.get("user_agent"), str) else ""
    ip = item.get("ip_address") if isinstance(item.get("ip_address"), str) else ""
    location = item.get("location") if isinstance(item.get("location"), str) else ""
    return DeviceView(ip_address=ip or "", user_agent=agent or "",
                      label=describe_user_agent(agent), location=location or "")
