"""HTTPS on the public listener: `server.tls_cert` / `server.tls_key` (docs/reference.md#tls).

The files are read when the gateway starts and again on every reload (SIGHUP), into the same
context, so a renewed certificate applies to new connections without a restart.
"""

from __future__ import annotations

import ssl

from gateway.config import GatewayConfig


class TlsError(Exception):
    """The certificate or key cannot be used, said as `KEY: problem`."""


def server_context(config: GatewayConfig) -> ssl.SSLContext | None:
    """The listener's TLS context, or None for plain HTTP."""
    server = config.server
    if not server.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    load(context, config)
    return context


def load(context: ssl.SSLContext, config: GatewayConfig) -> None:
    """(Re)load the certificate chain and key into `context`; TlsError when unusable."""
    cert, key = config.server.tls_cert, config.server.tls_key
    for name, path in (("server.tls_cert", cert), ("server.tls_key", key)):
        try:
            with open(path, "rb") as file:
                file.read(1)
        except OSError as exc:
            raise TlsError(f"{name}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as exc:
        raise TlsError(
            f"server.tls_cert: {cert} and {key} are not a PEM certificate and its key "
            f"({getattr(exc, 'reason', None) or type(exc).__name__})"
        ) from None


def check_tls(config: GatewayConfig) -> list[str]:
    """`KEY: problem` lines for `gateway check`."""
    try:
        server_context(config)
    except TlsError as exc:
        return [str(exc)]
    return []
