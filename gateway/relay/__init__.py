"""Everything the gateway does below aiohttp's public API, in one place.

The relay owns how bytes cross the gateway: the upstream client (`client`), how relayed
answers are written to the client (`answers`). Each module lists the aiohttp internals it
relies on; tests/unit/test_aiohttp_internals.py fails loudly when an aiohttp upgrade changes
one of them (which is also why pyproject.toml pins aiohttp to one minor version).
"""
