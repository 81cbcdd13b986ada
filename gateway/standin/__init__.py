"""An in-process stand-in for the Ory Kratos public API, independent of the gateway."""

from .app import OryStandin
from .faults import Faults
from .models import StandinSession

__all__ = ["Faults", "OryStandin", "StandinSession"]
