"""The forward-auth endpoints behind the real nginx and Caddy, configured exactly as the
README shows (docs/reference.md#forward-auth)."""
