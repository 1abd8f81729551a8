"""
Cross-site request protection of the admin listener.

Only POST changes anything.  A POST is refused (403) when the browser says it
comes from another site (C{Sec-Fetch-Site} other than C{same-origin} or
C{none}), when its C{Origin} is not the admin listener's own, or when it
carries neither this process's token (a hidden field of every form, or the
C{X-LB-Token} header) nor the C{X-LB-Admin} header, which a page of another
site cannot send without a CORS preflight that the admin listener never
grants.  Unlike httpd's balancer-manager, no Referer is trusted and the
token is checked on every change.
"""

from __future__ import annotations

import hmac
import secrets

from twisted.web.server import Request

__all__ = ["CrossSiteGuard"]

_SAME_SITE = (b"same-origin", b"none")


def _header(request: Request, name: bytes) -> bytes | None:
    values = request.requestHeaders.getRawHeaders(name)
    return values[0] if values else None


class CrossSiteGuard:
    """
    Checks state-changing requests.

    @ivar token: the per-process random token put in every form.
    """

    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(32)
        self._token = self.token.encode("ascii")

    def refusal(
        self, request: Request, form_token: bytes | None = None, *, form: bool = False
    ) -> str | None:
        """
        Why C{request} must be refused, or C{None} when it may change state.

        @param form_token: the token sent in the form, if any.
        @param form: the request comes from a form of the page, which must
            carry the token (the C{X-LB-Admin} header does not do there).
        """
        site = _header(request, b"sec-fetch-site")
        if site is not None and site.lower() not in _SAME_SITE:
            return f"cross-site request refused (Sec-Fetch-Site: {site.decode('latin-1')})"
        origin = _header(request, b"origin")
        if origin is not None:
            host = _header(request, b"host") or b""
            scheme = b"https://" if request.isSecure() else b"http://"
            if origin.lower() != scheme + host.lower():
                return f"cross-site request refused (Origin: {origin.decode('latin-1')})"
        token = form_token if form_token is not None else _header(request, b"x-lb-token")
        if token is not None:
            if hmac.compare_digest(token, self._token):
                return None
            return "wrong token: reload the manager page and try again"
        if not form and _header(request, b"x-lb-admin") is not None:
            return None
        return "missing token (forms carry one; scripts send the X-LB-Admin header)"
