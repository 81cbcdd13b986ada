"""Identities and sessions as the stand-in keeps them, and their Kratos JSON
(docs/standin.md#whoami)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SCHEMA_ID = "default"
SCHEMA_PATH = "/schemas/ZGVmYXVsdA"  # base64url("default"), as Kratos names it


def rfc3339(moment: float) -> str:
    """Go's RFC 3339 in UTC: fraction digits without trailing zeros, none at all when zero."""
    when = datetime.fromtimestamp(moment, tz=UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        text += f".{when.microsecond:06d}".rstrip("0")
    return text + "Z"


@dataclass
class Identity:
    """A Kratos identity plus the two things the demo login needs: a password and a 2FA flag."""

    id: str
    email: str
    password: str
    has_second_factor: bool
    traits: dict[str, Any]
    created_at: float
    verifiable_address_id: str
    recovery_address_id: str
    state: str = "active"
    state_changed_at: float | None = None
    metadata_public: dict[str, Any] | None = None  # set by admins; users cannot change it

    @property
    def is_active(self) -> bool:
        return self.state == "active"


@dataclass
class AuthMethod:
    """One completed factor; Kratos derives the session's AAL from these."""

    method: str
    aal: str
    completed_at: float


@dataclass(frozen=True)
class Device:
    """The device row recorded when the session was created."""

    id: str
    ip_address: str
    user_agent: str | None
    location: str


@dataclass
class StandinSession:
    """A session; `token` and `cookie_value` are two distinct credentials for it."""

    id: str
    token: str
    cookie_value: str
    identity_id: str
    logout_token: str
    created_at: float
    authenticated_at: float
    issued_at: float
    expires_at: float
    device: Device
    sequence: int
    methods: list[AuthMethod] = field(default_factory=list)
    active: bool = True

    @property
    def aal(self) -> str:
        """aal2 needs a first and a second factor; no factor at all is aal0
        (docs/standin.md#whoami)."""
        levels = {m.aal for m in self.methods}
        if "aal1" in levels and "aal2" in levels:
            return "aal2"
        return "aal1" if levels else "aal0"

    def is_live(self, now: float) -> bool:
        """Active and not expired; the identity's state is checked by the store."""
        return self.active and self.expires_at > now


def identity_json(identity: Identity, base_url: str) -> dict[str, Any]:
    """The identity as whoami embeds it: no credentials, no admin metadata."""
    created = rfc3339(identity.created_at)
    body: dict[str, Any] = {
        "id": identity.id,
        "schema_id": SCHEMA_ID,
        "schema_url": base_url + SCHEMA_PATH,
        "state": identity.state,
    }
    if identity.state_changed_at is not None:
        body["state_changed_at"] = rfc3339(identity.state_changed_at)
    body["traits"] = identity.traits
    if identity.email:
        body["verifiable_addresses"] = [
            {
                "id": identity.verifiable_address_id,
                "value": identity.email,
                "verified": False,
                "via": "email",
                "status": "sent",
                "created_at": created,
                "updated_at": created,
            }
        ]
        body["recovery_addresses"] = [
            {
                "id": identity.recovery_address_id,
                "value": identity.email,
                "via": "email",
                "created_at": created,
                "updated_at": created,
            }
        ]
    body["metadata_public"] = identity.metadata_public
    body["created_at"] = created
    body["updated_at"] = rfc3339(identity.state_changed_at or identity.created_at)
    body["organization_id"] = None
    return body


def session_json(
    session: StandinSession, identity: Identity, *, now: float, base_url: str
) -> dict[str, Any]:
    """Every key Kratos emits on whoami; `active` is recomputed on output like Kratos does."""
    device = session.device
    return {
        "id": session.id,
        "active": session.is_live(now) and identity.is_active,
        "expires_at": rfc3339(session.expires_at),
        "authenticated_at": rfc3339(session.authenticated_at),
        "authenticator_assurance_level": session.aal,
        "authentication_methods": [
            {"method": m.method, "aal": m.aal, "completed_at": rfc3339(m.completed_at)}
            for m in session.methods
        ],
        "issued_at": rfc3339(session.issued_at),
        "identity": identity_json(identity, base_url),
        "devices": [
            {
                "id": device.id,
                "ip_address": device.ip_address,
                "user_agent": device.user_agent,
                "location": device.location,
            }
        ],
    }
