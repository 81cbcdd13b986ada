"""The gateway's typed errors: each carries its error id and HTTP status
(docs/reference.md#error-ids).

Pipeline code raises these; only `respond.py` turns them into answers.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway answers on purpose."""

    error_id = "bad_request"
    status = 400
    message = "The request could not be handled."
    # What the access log and metrics call it (gateway.outcome.DECISIONS); None keeps the
    # decision already made (an app that fails after the request was let in).
    decision: str | None = "bad_request"
    closes = False  # the connection cannot be trusted after this: close it with the answer

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason or self.message)
        self.reason = reason


class BadRequestError(GatewayError):
    """The request is malformed or ambiguous (a path that could be read two ways)."""

    error_id = "bad_request"
    status = 400
    message = "The request was malformed or contained invalid parameters."


class FramingError(BadRequestError):
    """A request whose framing cannot be trusted (a body that broke off or broke its
    chunks, a transfer coding the gateway does not relay): answered, then closed."""

    closes = True


class VersionNotSupportedError(FramingError):
    """HTTP/0.9, HTTP/2 or another version the gateway does not speak on this listener."""

    status = 505
    message = "Only HTTP/1.0 and HTTP/1.1 are spoken here."


class RequestTimeoutError(BadRequestError):
    """The request head did not arrive within `server.header_timeout`."""

    status = 408
    message = "The request did not arrive in time."


class UriTooLongError(BadRequestError):
    """The request line is longer than the gateway reads."""

    status = 414
    message = "The request target is too long."


class HeadersTooLargeError(BadRequestError):
    """A header line is longer than the gateway reads, or there are too many."""

    status = 431
    message = "The request's header fields are too large."


class ExpectationFailedError(BadRequestError):
    """An `Expect` header the gateway cannot meet (anything but 100-continue)."""

    status = 417
    message = "The expectation given in the Expect header cannot be met."


class SessionRequiredError(GatewayError):
    """No credential, or Ory does not know it."""

    error_id = "session_required"
    status = 401
    message = "A valid session is required to access this resource."
    decision = "unauthenticated"


class StepUpRequiredError(GatewayError):
    """A session exists but its authenticator assurance level is too low."""

    error_id = "session_aal2_required"
    status = 403
    message = "A second factor is required to access this resource."
    decision = "step_up"


class RefreshRequiredError(GatewayError):
    """A session exists but the login is older than the route's `max_age`."""

    error_id = "session_refresh_required"
    status = 403
    message = "A recent login is required to access this resource."
    decision = "reauthenticate"


class AccessDeniedError(GatewayError):
    """A `deny` route, or a cross-site request to a state-changing endpoint."""

    error_id = "access_denied"
    status = 403
    message = "Access to this resource is denied."
    decision = "denied"


class ForbiddenError(AccessDeniedError):
    """A valid session that does not meet the route's `require`: signed in, not allowed."""

    message = "Your account is signed in but is not allowed to open this page."
    decision = "forbidden"

    def __init__(self, reason: str = "", *, signed_in_as: str = "") -> None:
        super().__init__(reason)
        self.signed_in_as = signed_in_as  # for the page: who, to offer a switch of account


class NotFoundError(GatewayError):
    """An unknown endpoint under the gateway's own prefix."""

    error_id = "not_found"
    status = 404
    message = "The requested resource could not be found."
    decision = "endpoint"


class MethodNotAllowedError(GatewayError):
    """A known gateway endpoint asked with the wrong method."""

    error_id = "method_not_allowed"
    status = 405
    message = "The method is not allowed for this resource."
    decision = "endpoint"


class OryUnavailableError(GatewayError):
    """Ory could not be asked: unreachable, timed out, 5xx, 429 or an unreadable answer."""

    error_id = "ory_unavailable"
    status = 503
    message = "The identity service is unavailable. Please try again shortly."
    decision = "ory_unavailable"


class UpstreamUnavailableError(GatewayError):
    """The protected app refused or dropped the connection."""

    error_id = "upstream_unavailable"
    status = 502
    message = "The application behind the gateway is unavailable."
    decision = None


class UpstreamTimeoutError(GatewayError):
    """The protected app did not start answering within `upstream.timeout`."""

    error_id = "upstream_timeout"
    status = 504
    message = "The application behind the gateway took too long to answer."
    decision = None


class InternalError(GatewayError):
    """A bug in the gateway: never an answer to any input on purpose."""

    error_id = "internal_error"
    status = 500
    message = "The gateway failed to handle the request."
    decision = None


class RedirectLoopError(GatewayError):
    """The same browser keeps being sent to the login for the same URL
    (docs/reference.md#unauthenticated-answers)."""

    error_id = "session_required"
    status = 401
    message = "Signing in does not seem to stick: the gateway keeps seeing no session."
    decision = "unauthenticated"
