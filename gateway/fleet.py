"""A fleet of gateways over one Redis (docs/reference.md#running-several-replicas).

Redis carries two things between replicas: evictions (pub/sub, `RedisBus`) and validated
sessions (keys with expiry, `SharedSessions`). Nothing in it is readable or forgeable:

* keys are keyed hashes (the credential key is already one, see credentials.mac_key; ids
  are hashed with the fleet key), values and messages carry a keyed MAC, and anything that
  fails the check is ignored;
* a revocation writes a marker (Redis' own clock, so no replica's clock matters) next to
  the keys it concerns; a shared session stamped earlier than any marker of its key, session
  or identity is a miss, whoever wrote it and whenever;
* Redis is never waited on for more than BOUND seconds; when it is down, slow or answering
  garbage, requests go on with the local cache and Ory, one line is logged per outage, and
  when it comes back every replica empties its local cache (it may have missed evictions).

redis-py is an optional dependency (`pip install 'ory-gateway[redis]'`), imported only here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, TypeVar

from gateway.bus import Deliver, Eviction
from gateway.observe import Metrics
from gateway.session import Session, pack, packed_fresh_until, unpack

log = logging.getLogger("gateway.fleet")

BOUND = 0.05  # seconds a request may wait for one Redis call
CHECK_EVERY = 1.0  # seconds between health checks while connected
HEALTHY_PINGS = 2  # quick answers in a row before Redis counts as back
WAIT_STEP = 0.005  # seconds between looks while another replica asks Ory
MISSED_MAX = 10_000  # evictions kept through an outage; past it, all shared sessions go
_VERSION = b"g1"
_HEAD = struct.Struct(">Q32s32s")  # stamp (ms, Redis clock), identity and session hashes
_TAG = 16

T = TypeVar("T")

# KEYS[1] value, KEYS[2] credential marker; ARGV[1] prefix. The value's head names the
# identity and session markers, so one round trip brings all a reader must check.
_LOOKUP = """
local v = redis.call('GET', KEYS[1])
if not v then return false end
local p = ARGV[1]
local mk = redis.call('GET', KEYS[2]) or ''
local mi = redis.call('GET', p .. 'r:i:' .. string.sub(v, 11, 42)) or ''
local ms = redis.call('GET', p .. 'r:s:' .. string.sub(v, 43, 74)) or ''
local ma = redis.call('GET', p .. 'r:all') or ''
return {v, mk, mi, ms, ma}
"""
# KEYS[1] lock, KEYS[2] value; ARGV[1] the lock's life (ms), ARGV[2] its owner. Returns
# {mine, now (ms)}. No claim while a value is there: it was shared after the caller looked
# (and its claim released), so the caller looks again instead of asking Ory a second time.
_CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[2]) == 1 then return {0, now} end
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[1]) then return {1, now} end
return {0, now}
"""
# KEYS: markers to set; ARGV[1] their life (ms), ARGV[2] channel, ARGV[3] message.
_REVOKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, k in ipairs(KEYS) do redis.call('SET', k, now, 'PX', ARGV[1]) end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return now
"""


def fleet_key(secret: bytes) -> bytes:
    """The key of every hash and MAC the fleet writes, from `server.secret`."""
    return hashlib.sha256(b"gateway fleet key\x00" + secret).digest()


class RedisLink:
    """The connection to the fleet's Redis, and an honest idea of whether it works: one
    watcher decides `connected`; requests only read it."""

    def __init__(self, url: str, metrics: Metrics) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError:
            raise RuntimeError(
                "fleet.redis_url needs the redis package: pip install 'ory-gateway[redis]'"
            ) from None
        self.client: Any = aioredis.from_url(
            url, socket_connect_timeout=1.0, socket_timeout=1.0, retry_on_timeout=False,
            health_check_interval=0, max_connections=64,
        )
        self._url = url
        self._metrics = metrics
        self.connected = False
        self._ever = False
        self._woken = asyncio.Event()
        self._reachable = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._on_return: list[Callable[[], object]] = []
        metrics.fleet_connected(False)

    def on_return(self, callback: Callable[[], object]) -> None:
        """Called each time Redis becomes reachable again (and the first time)."""
        self._on_return.append(callback)

    def start(self) -> None:
        if self._watcher is None:
            self._watcher = asyncio.ensure_future(self._watch())

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        with contextlib.suppress(Exception):
            await self.client.aclose()

    async def run(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """One Redis call within BOUND, or None (and the link is down) when it fails."""
        if not self.connected:
            return None
        try:
            async with asyncio.timeout(BOUND):
                return await call()
        except (TimeoutError, OSError, ValueError, _redis_errors()) as exc:
            self.down(type(exc).__name__)
            return None

    async def wait_connected(self) -> None:
        await self._reachable.wait()

    def down(self, why: str) -> None:
        """Redis failed a call: say so once, and let the watcher find when it is back."""
        self._reachable.clear()
        if self.connected:
            self.connected = False
            self._metrics.fleet_connected(False)
            log.warning("Redis unavailable (%s); going on with the local cache and Ory, "
                        "revocations reach other replicas when it is back", why)
        self._woken.set()

    async def _watch(self) -> None:
        backoff = 0.1
        quick = 0
        while True:
            healthy = await self._ping()
            if self.connected:
                if not healthy:
                    self.down("no answer to PING")
                    continue
                await self._sleep(CHECK_EVERY)
                continue
            quick = quick + 1 if healthy else 0
            if quick >= HEALTHY_PINGS or (healthy and not self._ever):
                quick, backoff = 0, 0.1
                self._up()
                continue
            await self._sleep(backoff if not healthy else 0.1)
            backoff = min(backoff * 2, 5.0) if not healthy else backoff

    async def _ping(self) -> bool:
        try:
            async with asyncio.timeout(BOUND if self._ever else 1.0):
                await self.client.ping()
        except (TimeoutError, OSError, ValueError, _redis_errors()):
            return False
        return True

    async def _sleep(self, seconds: float) -> None:
        self._woken.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._woken.wait()

    def _up(self) -> None:
        returning = self._ever
        self.connected, self._ever = True, True
        self._reachable.set()
        self._metrics.fleet_connected(True)
        if returning:
            log.warning("Redis is back; local caches emptied (they may have missed "
                        "revocations)")
        else:
            log.info("connected to Redis")
        for callback in self._on_return:
            callback()


def _redis_errors() -> type[BaseException]:
    from redis.exceptions import RedisError

    return RedisError


class RedisBus:
    """Evictions between replicas: each is published with a MAC, with the markers that make
    shared sessions stamped before it a miss, in one script (one round trip)."""

    def __init__(self, link: RedisLink, prefix: str, key: bytes, marker_life: float,
                 metrics: Metrics) -> None:
        self._link = link
        self._metrics = metrics
        self._prefix = prefix
        self._key = key
        self._channel = f"{prefix}evictions"
        self._marker_ms = int(marker_life * 1000)
        self._origin = secrets.token_hex(8)  # this process: its own messages come back too
        self._pending: set[asyncio.Task[Any]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._missed: deque[Eviction] = deque(maxlen=MISSED_MAX)
        link.on_return(self.replay)

    def tell(self, eviction: Eviction) -> None:
        if eviction[0] == "*":
            return  # a local clear is nobody else's business
        if not self._link.connected:
            self._missed.append(eviction)  # told when Redis is back (see `replay`)
            return
        task = asyncio.ensure_future(self._publish(eviction))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def replay(self) -> None:
        """Redis is back: publish the evictions made while it was not, so that no replica
        (this one included) takes a session revoked meanwhile from the shared cache. Past
        MISSED_MAX of them, every shared session from before now becomes a miss instead."""
        missed, self._missed = self._missed, deque(maxlen=MISSED_MAX)
        if len(missed) == MISSED_MAX:
            missed = deque([("*", "", "")])
        for eviction in missed:
            task = asyncio.ensure_future(self._publish(eviction))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def settle(self) -> None:
        """Wait (at most BOUND) until every eviction told so far has reached Redis: called
        before a revoking answer leaves, so no replica serves the session after it."""
        if self._pending:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(BOUND):
                    await asyncio.gather(*self._pending, return_exceptions=True)

    def start(self, deliver: Deliver) -> None:
        self._listener = asyncio.ensure_future(self._listen(deliver))

    async def stop(self) -> None:
        tasks = [t for t in (self._listener, *self._pending) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _publish(self, eviction: Eviction) -> None:
        kind, value, extra = eviction
        markers = self._markers(kind, value)
        message = self._sign(f"{self._origin}\x00{kind}\x00{value}\x00{extra}")
        client = self._link.client
        await self._link.run(lambda: client.eval(
            _REVOKE, len(markers), *markers, self._marker_ms, self._channel, message
        ))

    def _markers(self, kind: str, value: str) -> list[str]:
        if kind == "*":
            return [f"{self._prefix}r:all"]
        if kind == "k":
            return [f"{self._prefix}r:k:{value}"]
        if kind == "s":
            return [f"{self._prefix}r:s:{hashed(self._key, value)}"]
        if kind == "i":
            return [f"{self._prefix}r:i:{hashed(self._key, value)}"]
        return []

    def _sign(self, text: str) -> bytes:
        body = text.encode("utf-8", "surrogatepass")
        return body + hashlib.blake2b(body, key=self._key, digest_size=_TAG).digest()

    async def _listen(self, deliver: Deliver) -> None:
        """Hand on every eviction published by another process; reconnect after outages."""
        while True:
            await self._link.wait_connected()
            pubsub = self._link.client.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while self._link.connected:
                    message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._deliver(message["data"], deliver)
            except (OSError, ValueError, _redis_errors()) as exc:
                self._link.down(f"subscription lost: {type(exc).__name__}")
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _deliver(self, data: bytes, deliver: Deliver) -> None:
        body, tag = data[:-_TAG], data[-_TAG:]
        expected = hashlib.blake2b(body, key=self._key, digest_size=_TAG).digest()
        if len(data) <= _TAG or not secrets.compare_digest(tag, expected):
            return  # not from a replica holding the secret
        parts = body.decode("utf-8", "surrogatepass").split("\x00")
        if len(parts) == 4 and parts[0] != self._origin:
            deliver((parts[1], parts[2], parts[3]))
            if parts[1] != "*":
                self._metrics.revocation("fleet")  # heard from another replica


def hashed(key: bytes, identifier: str) -> str:
    """A session or identity id as the fleet names it in Redis (32 hex digits)."""
    data = identifier.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, key=key, digest_size=16).hexdigest()


class Claim(NamedTuple):
    """The right to ask Ory about a credential for the fleet, and when it was asked for."""

    mine: bool
    stamp: int  # Redis' clock (ms) just before Ory was asked


class SharedSessions:
    """Validated sessions shared by the replicas: one Ory call per credential per ttl."""

    def __init__(self, link: RedisLink, prefix: str, key: bytes, lock_life: float,
                 clock: Callable[[], float]) -> None:
        self._link = link
        self._prefix = prefix
        self._key = key
        self._lock_ms = max(int(lock_life * 1000), 1)
        self._clock = clock
        self._owner = secrets.token_hex(8)

    async def lookup(self, key: bytes, schema: str) -> tuple[Session, float] | None:
        """A valid shared session for this credential key, and until when it is fresh.
        `schema` names what its identity headers were made from: other configurations
        (a rolling change) never see it."""
        client, name = self._link.client, key.hex()
        found = await self._link.run(lambda: client.eval(
            _LOOKUP, 2, f"{self._prefix}s:{schema}:{name}", f"{self._prefix}r:k:{name}",
            self._prefix,
        ))
        if not found:
            return None
        return self._read(found[0], [m for m in found[1:] if m])

    async def claim(self, key: bytes, schema: str) -> Claim | None:
        """Ask the fleet for the right to call Ory for this key; None while Redis is down."""
        client, name = self._link.client, key.hex()
        answer = await self._link.run(lambda: client.eval(
            _CLAIM, 2, f"{self._prefix}l:{schema}:{name}", f"{self._prefix}s:{schema}:{name}",
            self._lock_ms, self._owner,
        ))
        if not answer:
            return None
        return Claim(bool(int(answer[0])), int(answer[1]))

    async def wait_for(
        self, key: bytes, schema: str, within: float
    ) -> tuple[Session, float] | None:
        """Another replica is asking Ory, or has just shared its answer: that answer (at
        most `within`)."""
        deadline = time.monotonic() + within
        first = True
        while time.monotonic() < deadline and self._link.connected:
            if not first:
                await asyncio.sleep(WAIT_STEP)
            first = False
            found = await self.lookup(key, schema)
            if found is not None:
                return found
            if not await self._locked(key, schema):
                # Shared just now (the value is written before the claim goes), or it gave
                # up or found no session: one more look, then ask Ory ourselves.
                return await self.lookup(key, schema)
        return None

    async def store(
        self, key: bytes, schema: str, session: Session, fresh_until: float, stamp: int
    ) -> None:
        """Share a session Ory validated (asked for at `stamp`), for its remaining life."""
        life_ms = int((fresh_until - self._clock()) * 1000)
        value = self._write(session, fresh_until, stamp)
        client, name = self._link.client, key.hex()

        async def put() -> None:
            async with client.pipeline(transaction=False) as pipe:
                if value is not None and life_ms > 0:
                    pipe.set(f"{self._prefix}s:{schema}:{name}", value, px=life_ms)
                pipe.delete(f"{self._prefix}l:{schema}:{name}")
                await pipe.execute()

        await self._link.run(put)

    async def release(self, key: bytes, schema: str) -> None:
        """Let others ask Ory about this key (nothing was shared)."""
        client = self._link.client
        await self._link.run(lambda: client.delete(f"{self._prefix}l:{schema}:{key.hex()}"))

    async def _locked(self, key: bytes, schema: str) -> bool:
        """Another replica is asking Ory. Every claim expires (`PX`); a lock without a life
        was not set by a replica and is not waited for."""
        client, name = self._link.client, f"{self._prefix}l:{schema}:{key.hex()}"
        remaining = await self._link.run(lambda: client.pttl(name))
        return remaining is not None and int(remaining) > 0

    def _write(self, session: Session, fresh_until: float, stamp: int) -> bytes | None:
        packed = pack(session, fresh_until)
        if packed is None:
            return None  # a session the local cache does not keep either
        head = _HEAD.pack(
            stamp, hashed(self._key, session.identity_id).encode(),
            hashed(self._key, session.session_id).encode(),
        )
        body = _VERSION + head + packed
        return body + hashlib.blake2b(body, key=self._key, digest_size=_TAG).digest()

    def _read(self, value: bytes, markers: list[bytes]) -> tuple[Session, float] | None:
        body, tag = value[:-_TAG], value[-_TAG:]
        expected = hashlib.blake2b(body, key=self._key, digest_size=_TAG).digest()
        if len(value) <= len(_VERSION) + _HEAD.size + _TAG or not body.startswith(_VERSION):
            return None
        if not secrets.compare_digest(tag, expected):
            return None  # tampered with, or written under another secret: a miss
        stamp, _, _ = _HEAD.unpack_from(body, len(_VERSION))
        if any(not marker.isdigit() or stamp <= int(marker) for marker in markers):
            return None  # revoked after it was asked for (a marker we cannot read: as if)
        packed = body[len(_VERSION) + _HEAD.size:]
        try:
            session, fresh_until = unpack(packed), packed_fresh_until(packed)
        except (ValueError, struct.error, UnicodeDecodeError):
            return None
        now = self._clock()
        if fresh_until <= now or not session.is_valid_at(now):
            return None
        return session, fresh_until
