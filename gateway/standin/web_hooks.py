"""Kratos' `web_hook` action, as a self-service flow runs it after it succeeds.

Kratos calls a configured URL after a flow (here: `settings` with the password method, and
`recovery`), with a JSON body rendered from a Jsonnet template (the gateway's README uses
`{identity_id: ctx.identity.id}`) and, with an `api_key` auth block in `header` mode, the
key in a header of its own choosing (the gateway's: `Authorization: Bearer <token>`).
`revoke_active_sessions`, listed before it, has already revoked the other sessions.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True)
class WebHook:
    """One configured `web_hook`: where, with which header, after which flows."""

    url: str
    header: str  # e.g. "Authorization"
    value: str  # e.g. "Bearer <token>"
    after: frozenset[str]  # flow names: "settings", "recovery"


async def call(hooks: list[WebHook], flow: str, identity_id: str) -> list[int]:
    """Call every hook configured for `flow`; their statuses (0: unreachable)."""
    statuses = []
    async with aiohttp.ClientSession() as http:
        for hook in hooks:
            if flow not in hook.after:
                continue
            try:
                async with asyncio.timeout(10):
                    response = await http.post(
                        hook.url, json={"identity_id": identity_id},
                        headers={hook.header: hook.value},
                    )
                    await response.read()
                    statuses.append(response.status)
            except (aiohttp.ClientError, OSError, TimeoutError):
                statuses.append(0)
    return statuses
