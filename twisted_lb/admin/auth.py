"""
HTTP Basic authentication of the admin listener with C{twisted.cred} and
C{twisted.web.guard}: a checker for L{password hashes
<twisted_lb.admin.passwords>} whose PBKDF2 runs in a thread (it takes a good
fraction of a second on purpose, and must not stall the proxy), with the
outcome of good credentials remembered for the process's life so that a page
that refreshes itself costs one hash, not one per request.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer, threads
from twisted.web.guard import BasicCredentialFactory, HTTPAuthSessionWrapper
from twisted.web.resource import IResource
from zope.interface import implementer

from .passwords import verify_password

__all__ = ["PasswordHashChecker", "protect"]


@implementer(ICredentialsChecker)
class PasswordHashChecker:
    """
    Checks a user name and password against one user and a password hash.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, user: str, password_hash: str, reactor: Any) -> None:
        self._user = user.encode("utf-8")
        self._hash = password_hash
        self._reactor = reactor
        self._key = os.urandom(32)
        self._good: set[bytes] = set()

    def _fingerprint(self, password: bytes) -> bytes:
        return hmac.new(self._key, password, hashlib.sha256).digest()

    def requestAvatarId(self, credentials: Any) -> defer.Deferred[bytes]:  # type: ignore[override]  # noqa: N802 - cred API; Twisted types the id as bytes | tuple[()]
        username = credentials.username
        if isinstance(username, str):
            username = username.encode("utf-8")
        password = credentials.password
        if isinstance(password, str):
            password = password.encode("utf-8")
        if not hmac.compare_digest(username, self._user):
            return defer.fail(UnauthorizedLogin("unknown user"))
        fingerprint = self._fingerprint(password)
        if fingerprint in self._good:
            return defer.succeed(username)
        d = threads.deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), verify_password, password, self._hash
        )

        def checked(ok: bool) -> bytes:
            if not ok:
                raise UnauthorizedLogin("wrong password")
            self._good.add(fingerprint)
            return username  # type: ignore[no-any-return]

        return d.addCallback(checked)


@implementer(IRealm)
class _Realm:
    def __init__(self, resource: IResource) -> None:
        self._resource = resource

    def requestAvatar(self, avatar_id: Any, mind: Any, *interfaces: Any) -> tuple[Any, Any, Any]:  # noqa: N802
        if IResource in interfaces:
            return IResource, self._resource, lambda: None
        raise NotImplementedError()


def protect(resource: IResource, user: str, password_hash: str | None, reactor: Any) -> IResource:
    """
    C{resource} behind HTTP Basic authentication, or as it is when no
    password is configured.
    """
    if password_hash is None:
        return resource
    portal = Portal(_Realm(resource), [PasswordHashChecker(user, password_hash, reactor)])
    return HTTPAuthSessionWrapper(portal, [BasicCredentialFactory(b"twisted_lb admin")])
