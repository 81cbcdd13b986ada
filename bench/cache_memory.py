"""How much memory 100 000 cached sessions take, and that the cache stays bounded.

    python bench/cache_memory.py [--entries 100000] [--overflow 20000]

In one process: import and build the gateway app (so the baseline is what a running gateway
has loaded), measure RSS, then fill a `gateway.cache.SessionCache` (max_entries = --entries)
through its public `get()` with `--entries` realistic sessions (`gateway.session.
parse_session` on a whoami-shaped document, identity headers as in the default config, the
cache key a credential hash as the gateway makes it), and measure RSS again. Then insert
`--overflow` more and check after every insert that `len(cache) <= max_entries`.

Prints PASS/FAIL lines (bench/run.py collects them); exit status 1 if any FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import uuid
from pathlib import Path
from typing import Any

from gateway.app import RESOURCES, build_app
from gateway.cache import SessionCache
from gateway.config import load_config
from gateway.credentials import credential_key
from gateway.ory import WhoamiResult
from gateway.session import format_timestamp, parse_session

RSS_LIMIT_MB = 100.0


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def whoami_document(n: int, now: float) -> dict[str, Any]:
    """What Ory's whoami answers for user n (the fields a real session has)."""
    identity_id = str(uuid.uuid4())
    return {
        "id": str(uuid.uuid4()),
        "active": True,
        "expires_at": format_timestamp(now + 86400),
        "authenticated_at": format_timestamp(now - 60),
        "authenticator_assurance_level": "aal1",
        "authentication_methods": [
            {"method": "password", "aal": "aal1", "completed_at": format_timestamp(now - 60)}
        ],
        "issued_at": format_timestamp(now - 60),
        "identity": {
            "id": identity_id,
            "schema_id": "default",
            "schema_url": "https://auth.example.com/schemas/ZGVmYXVsdA",
            "state": "active",
            "traits": {"email": f"user{n}.{identity_id[:8]}@example.com"},
            "metadata_public": None,
            "created_at": format_timestamp(now - 86400 * 30),
            "updated_at": format_timestamp(now - 86400),
        },
        "devices": [{"id": str(uuid.uuid4()), "ip_address": "127.0.0.1",
                     "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0",
                     "location": ""}],
    }


async def fill(cache: SessionCache, start: int, count: int, max_entries: int,
               check_bound: bool) -> int:
    """Insert `count` sessions through the public API; the largest len(cache) seen."""
    config = load_config("", {})
    now = time.time()
    largest = 0
    for n in range(start, start + count):
        session = parse_session(whoami_document(n, now), config.identity_headers, now)

        async def fetch(_fresh: bool, session: Any = session) -> WhoamiResult:
            return session  # type: ignore[no-any-return]

        key = credential_key("cookie", f"MTcwMDAwMDAwMHxjb29raWUtdmFsdWUt{n:012d}")
        await cache.get(key, fetch)
        if check_bound:
            largest = max(largest, len(cache))
            if len(cache) > max_entries:
                return largest
    return largest


def full_gc_ms() -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        gc.collect()
        best = min(best, time.perf_counter() - started)
    return best * 1000


async def measure(entries: int, overflow: int) -> list[tuple[bool, str]]:
    config = load_config("", {})
    app = await build_app(config)  # import and build everything a running gateway has
    await app[RESOURCES].close()
    del app
    cache = SessionCache(ttl=3600.0, max_entries=entries, stale_if_error=0.0, clock=time.time)
    gc.collect()
    await asyncio.sleep(0)
    before = rss_kb()
    print(f"a full GC pass before filling: {full_gc_ms():.1f} ms over "
          f"{len(gc.get_objects())} tracked objects")
    await fill(cache, 0, entries, entries, check_bound=False)
    await asyncio.sleep(0)  # let the singleflight done-callbacks run
    gc.collect()
    after = rss_kb()
    growth_mb = (after - before) / 1024
    total_mb = after / 1024
    print(f"baseline RSS (gateway imported, app built): {before / 1024:.1f} MB")
    print(f"RSS with {len(cache)} cached sessions:        {total_mb:.1f} MB "
          f"(+{growth_mb:.1f} MB, {(after - before) * 1024 / max(len(cache), 1):.0f} "
          "bytes per entry)")
    print(f"a full GC pass (what a gen-2 collection costs the event loop): "
          f"{full_gc_ms():.1f} ms over {len(gc.get_objects())} tracked objects")
    largest = await fill(cache, entries, overflow, entries, check_bound=True)
    await asyncio.sleep(0)
    gc.collect()
    final = rss_kb()
    print(f"after {overflow} more inserts: len(cache) = {len(cache)}, largest seen {largest}, "
          f"RSS {final / 1024:.1f} MB")
    return [
        (total_mb < RSS_LIMIT_MB,
         f"RSS {total_mb:.1f} MB < {RSS_LIMIT_MB:.0f} MB with {entries} cached sessions "
         f"(cache itself +{growth_mb:.1f} MB)"),
        (largest <= entries and len(cache) <= entries,
         f"cache never above max_entries: largest len {largest} <= {entries} "
         f"while inserting {entries + overflow}"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000, help="max_entries and fill")
    parser.add_argument("--overflow", type=int, default=20_000, help="inserts past max_entries")
    args = parser.parse_args()
    started = time.monotonic()
    results = asyncio.run(measure(args.entries, args.overflow))
    print(f"({time.monotonic() - started:.1f} s)")
    for ok, text in results:
        print(f"{'PASS' if ok else 'FAIL'} {text}")
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
