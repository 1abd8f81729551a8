"""
What can go wrong in one attempt to send a request to a member.

The dispatcher decides from these classes whether a request may go to another
member; L{status_for} is the one place that turns a failure into the status
the client sees (502 for a member that broke the protocol or reset, 503 when
no member is usable, 504 on a timeout).
"""

from __future__ import annotations

from twisted_lb.http_rules import error_body

__all__ = [
    "AttemptFailed",
    "ConnectFailed",
    "PingFailed",
    "TLSFailed",
    "RequestNotSent",
    "ResponseNeverReceived",
    "BackendTimeout",
    "BackendProtocolError",
    "BackendRejected",
    "ResponseAborted",
    "MemberBusy",
    "NoUsableMember",
    "RequestRefused",
    "status_for",
    "ErrorPage",
    "plain_error_page",
]

#: An error page as answered: its content type and body.
ErrorPage = tuple[bytes, bytes]


def plain_error_page(status: int, message: str) -> ErrorPage:
    """
    The proxy's own error page: the status line's code and phrase, then
    C{message}, as plain text (both lanes answer this one).
    """
    return (b"text/plain; charset=utf-8", error_body(status, message))


class AttemptFailed(Exception):
    """
    One attempt at one member failed.

    @cvar reached_application: whether the request may have reached the
        application (then only an idempotent request without a body may be
        sent again).
    @cvar marks_member_down: whether the member is put in error.
    @cvar status: the status the client gets when no retry helps.
    """

    reached_application: bool = True
    marks_member_down: bool = False
    status: int = 502


class ConnectFailed(AttemptFailed):
    """No connection could be made (refused, unreachable, connect timeout)."""

    reached_application = False
    marks_member_down = True
    status = 503


class TLSFailed(ConnectFailed):
    """
    The member's TLS handshake failed (an untrusted or mismatched certificate):
    the member is reachable but not the one we may talk to, so the client gets
    a 502 (a bad gateway), not a 503.
    """

    status = 502


class PingFailed(AttemptFailed):
    """A new connection did not answer CPING with CPONG in time."""

    reached_application = False
    marks_member_down = True
    status = 503


class RequestNotSent(AttemptFailed):
    """A pooled connection broke before any byte of the request went out."""

    reached_application = False
    status = 502


class ResponseNeverReceived(AttemptFailed):
    """The request went out, the connection broke before any response byte."""

    reached_application = True
    marks_member_down = True
    status = 502


class BackendTimeout(AttemptFailed):
    """The member answered nothing within its timeout: a slow request."""

    reached_application = True
    status = 504


class BackendProtocolError(AttemptFailed):
    """The member broke the protocol (malformed packet, bad framing)."""

    reached_application = True
    status = 502


class BackendRejected(AttemptFailed):
    """
    The member refused the proxy itself, e.g. Tomcat's 403 for a missing or
    wrong AJP secret: a configuration error, never shown to users as a page.
    """

    reached_application = False
    marks_member_down = True
    status = 502


class ResponseAborted(AttemptFailed):
    """The response had started when the member failed; it is cut short."""

    reached_application = True
    status = 502


class MemberBusy(AttemptFailed):
    """Every connection the member may have is busy and none freed in time."""

    reached_application = False
    status = 503


class NoUsableMember(Exception):
    """No member of the balancer may take the request."""

    status = 503


class RequestRefused(Exception):
    """
    The proxy refuses the request itself, before any member sees it.

    @ivar status: the status to answer with (400, 404, 405, 413, 414, 431…).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def status_for(failure: BaseException) -> int:
    """
    The status a client gets for a request that failed with C{failure}.

    @param failure: the last error of the request.
    @return: an HTTP status code.
    """
    status = getattr(failure, "status", None)
    if isinstance(status, int):
        return status
    return 502
