"""CSRF tokens: bound to a session, signed with the secret, compared safely whatever arrives."""

from __future__ import annotations

import pytest

from gateway.csrf import CsrfSigner


def test_token_is_bound_to_session_and_secret() -> None:
    signer = CsrfSigner(b"secret")

    assert signer.is_valid("s1", signer.token("s1"))
    assert not signer.is_valid("s2", signer.token("s1"))
    assert not CsrfSigner(b"other").is_valid("s1", signer.token("s1"))


@pytest.mark.parametrize(
    "token",
    [None, "", "forged", "\ufffd\ufffd", "\udcff", "é" * 43, "x" * 10_000],
    ids=["missing", "empty", "forged", "replacement-chars", "lone-surrogate", "non-ascii",
         "huge"],
)
def test_any_wrong_token_is_refused_without_error(token: str | None) -> None:
    assert not CsrfSigner(b"secret").is_valid("s1", token)
