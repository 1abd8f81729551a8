"""
HTTP Basic authentication against an Apache htpasswd file (Apache's
C{AuthType Basic} with C{AuthUserFile}): the file is read once (at start-up
and on reload), and checking a request is a pure function.

Password hashes of C{htpasswd}: bcrypt (C{$2y$}, C{-B}), SHA-1 (C{{SHA}},
C{-s}) and Apache's MD5 (C{$apr1$}, the default). Checks that succeeded are
remembered (bounded), so that a client sending the same credentials on
every request costs one bcrypt computation, not one per request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections import OrderedDict

import attrs
import bcrypt

from twisted_lb.access import AccessRule, plain_path

__all__ = ["AuthRule", "AuthRules", "Authenticator", "apr1", "read_htpasswd", "verify"]

#: How many successful checks are remembered.
_REMEMBERED = 1024

_APR1_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def apr1(password: bytes, salt: bytes) -> bytes:
    """Apache's MD5 password hash (C{$apr1$salt$hash}), as C{htpasswd -m} writes it."""
    salt = salt[:8]
    magic = b"$apr1$"
    ctx = hashlib.md5(password + magic + salt)
    alternate = hashlib.md5(password + salt + password).digest()
    for i in range(len(password), 0, -16):
        ctx.update(alternate[: min(16, i)])
    i = len(password)
    while i:
        ctx.update(b"\0" if i & 1 else password[:1])
        i >>= 1
    final = ctx.digest()
    for i in range(1000):
        step = hashlib.md5()
        step.update(password if i & 1 else final)
        if i % 3:
            step.update(salt)
        if i % 7:
            step.update(password)
        step.update(final if i & 1 else password)
        final = step.digest()
    out = []
    for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)):
        value = (final[a] << 16) | (final[b] << 8) | final[c]
        for _ in range(4):
            out.append(_APR1_ALPHABET[value & 0x3F])
            value >>= 6
    value = final[11]
    for _ in range(2):
        out.append(_APR1_ALPHABET[value & 0x3F])
        value >>= 6
    return magic + salt + b"$" + "".join(out).encode("ascii")


def verify(password: bytes, stored: bytes) -> bool:
    """Whether C{password} matches the htpasswd hash C{stored}."""
    if stored.startswith((b"$2y$", b"$2a$", b"$2b$")):
        try:
            return bcrypt.checkpw(password, b"$2b$" + stored[4:])
        except ValueError:
            return False
    if stored.startswith(b"{SHA}"):
        digest = base64.b64encode(hashlib.sha1(password).digest())
        return hmac.compare_digest(digest, stored[5:])
    if stored.startswith(b"$apr1$"):
        salt = stored[6:].split(b"$", 1)[0]
        return hmac.compare_digest(apr1(password, salt), stored)
    return False


def read_htpasswd(path: str) -> dict[str, bytes]:
    """
    The users and password hashes of an htpasswd file.

    @raise OSError: when it cannot be read.
    @raise ValueError: for a line that is not C{user:hash} with a supported
        hash (crypt and plain text are not).
    """
    users: dict[str, bytes] = {}
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line or line.startswith(b"#"):
                continue
            user, sep, stored = line.partition(b":")
            if not sep or not user:
                raise ValueError(f"{path} line {number}: not user:hash")
            if not stored.startswith((b"$2y$", b"$2a$", b"$2b$", b"{SHA}", b"$apr1$")):
                raise ValueError(
                    f"{path} line {number}: the hash of {user.decode('utf-8', 'replace')!r} is "
                    "not bcrypt, {SHA} or $apr1$ (crypt and plain text are not supported: "
                    "htpasswd -B makes bcrypt)"
                )
            users[user.decode("utf-8", "surrogateescape")] = stored
    return users


@attrs.frozen
class AuthRule:
    """
    Who must log in under C{path}.

    @ivar path: the prefix (as L{twisted_lb.access.AccessRule.path}).
    @ivar realm: the C{AuthName}, shown by browsers.
    @ivar user_file: the htpasswd file; C{""} for a section that asks for
        no login (a later section without authentication).
    @ivar users: the users allowed (C{Require user}); empty for any user of
        the file (C{Require valid-user}).
    """

    path: str
    realm: str
    user_file: str
    users: tuple[str, ...] = ()


class Authenticator:
    """Checks C{Authorization: Basic} against one rule's users (loaded once)."""

    def __init__(self, rule: AuthRule, users: dict[str, bytes]) -> None:
        self.rule = rule
        self.challenge = b'Basic realm="' + rule.realm.replace('"', "'").encode("utf-8") + b'"'
        allowed = set(rule.users) if rule.users else None
        self._users = {u: h for u, h in users.items() if allowed is None or u in allowed}
        self._remembered: OrderedDict[bytes, None] = OrderedDict()

    def allows(self, authorization: bytes | None) -> bool:
        """Whether the C{Authorization} value names a user of the rule with the right password."""
        if not authorization or authorization[:6].lower() != b"basic ":
            return False
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        stored = self._users.get(user.decode("utf-8", "surrogateescape")) if sep else None
        if stored is None:
            return False
        key = hashlib.sha256(decoded + b"\0" + stored).digest()
        if key in self._remembered:
            self._remembered.move_to_end(key)
            return True
        if not verify(password, stored):
            return False
        self._remembered[key] = None
        if len(self._remembered) > _REMEMBERED:
            self._remembered.popitem(last=False)
        return True


class AuthRules:
    """
    The login rules of one route, in Apache's merge order; the last rule
    whose prefix holds the request's path decides (one without a user file
    asks for no login).
    """

    def __init__(self, rules: tuple[AuthRule, ...]) -> None:
        self._rules = [
            (
                AccessRule(rule.path),
                Authenticator(rule, read_htpasswd(rule.user_file)) if rule.user_file else None,
            )
            for rule in rules
        ]

    def challenge(self, path: bytes, authorization: bytes | None) -> bytes | None:
        """
        C{None} when the request may pass, else the C{WWW-Authenticate}
        value of the 401 to answer.
        """
        plain = plain_path(path)
        for prefix, authenticator in reversed(self._rules):
            if prefix.covers(plain):
                if authenticator is None or authenticator.allows(authorization):
                    return None
                return authenticator.challenge
        return None
