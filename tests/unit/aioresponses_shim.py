"""aioresponses 0.7.9 on aiohttp >= 3.14, confined to the Ory client's unit tests.

aiohttp 3.14's `ClientResponse.__init__` requires a `stream_writer` (it reads its
`output_size`), which aioresponses 0.7.9 does not pass. aioresponses takes a
`response_class` per registered response, not in its constructor, so `OryMock` fills it in
for every registration. Test-only; confine it to the Ory client's unit tests, because
aioresponses patches every `ClientSession` while active.
"""

from __future__ import annotations

from typing import Any

from aiohttp import ClientResponse
from aioresponses import aioresponses
from yarl import URL


class _SentRequest:
    """Stand-in for the request writer of a request that has been sent already."""

    output_size = 0


class ShimResponse(ClientResponse):
    """A ClientResponse that aioresponses can build on aiohttp 3.14."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _SentRequest())
        super().__init__(method, url, **kwargs)


class OryMock(aioresponses):
    """`aioresponses` whose responses are all built with `ShimResponse`."""

    def add(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", ShimResponse)
        super().add(*args, **kwargs)
