"""Serialisation details the SDK would let slip: Go timestamps and derived AAL."""

from __future__ import annotations

import pytest

from gateway.standin import OryStandin
from gateway.standin.models import AuthMethod, rfc3339

from .conftest import FakeClock


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param(0.0, "1970-01-01T00:00:00Z", id="epoch-no-fraction"),
        pytest.param(1381134199.0, "2013-10-07T08:23:19Z", id="whole-second"),
        pytest.param(1675699282.898169, "2023-02-06T16:01:22.898169Z", id="microseconds"),
        pytest.param(1675699282.5, "2023-02-06T16:01:22.5Z", id="trailing-zeros-dropped"),
        pytest.param(1675699282.12, "2023-02-06T16:01:22.12Z", id="two-digits"),
    ],
)
def test_rfc3339_matches_go_format(moment: float, expected: str) -> None:
    assert rfc3339(moment) == expected


@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        pytest.param([], "aal0", id="no-factor"),
        pytest.param(["aal1"], "aal1", id="password"),
        pytest.param(["aal1", "aal2"], "aal2", id="password-and-totp"),
        pytest.param(["aal2"], "aal1", id="second-factor-alone-counts-as-aal1"),
    ],
)
def test_session_aal_is_derived_from_methods(
    levels: list[str], expected: str, clock: FakeClock
) -> None:
    ory = OryStandin(clock=clock)
    session = ory.create_session(ory.add_identity("x@example.com"))
    session.methods = [AuthMethod("m", level, clock()) for level in levels]
    assert session.aal == expected
