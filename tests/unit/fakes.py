"""Small fakes shared by the unit tests: a hand-moved clock and Session builders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.session import Session

# Ory's published example payloads, copied into the repository (see its README.md).
EXAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "ory"


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_session(
    session_id: str = "s1",
    identity_id: str = "i1",
    *,
    expires_at: float | None = None,
    aal: str = "aal1",
) -> Session:
    """A parsed Session without going through Ory JSON."""
    return Session(
        session_id=session_id,
        identity_id=identity_id,
        email=f"{identity_id}@example.com",
        aal=aal,
        authenticated_at=0.0,
        expires_at=expires_at,
        headers=(("X-User-Id", identity_id),),
    )


def load_example(name: str) -> dict[str, Any]:
    """One of Ory's example payloads, as a fresh dict the test may change."""
    document: dict[str, Any] = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    return document
