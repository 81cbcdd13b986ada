"""An authenticating reverse proxy that puts Ory sessions in front of legacy web apps."""

__version__ = "0.1.0"
