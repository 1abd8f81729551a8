"""
Password hashes for the admin listener: PBKDF2-HMAC-SHA256 from C{hashlib},
written as C{pbkdf2_sha256$ITERATIONS$SALT$HASH} (URL-safe base64 without
padding), so that a configuration file never holds the password itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from twisted_lb.config.model import PASSWORD_HASH_PREFIX

__all__ = ["ITERATIONS", "hash_password", "verify_password"]

#: PBKDF2 iterations of new hashes.
ITERATIONS = 200_000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """
    Hash a password for C{admin.password}.

    @param password: the password.
    @param iterations: PBKDF2 iterations.
    @param salt: the salt; 16 random bytes when not given.
    @return: C{pbkdf2_sha256$ITERATIONS$SALT$HASH}.
    """
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"{PASSWORD_HASH_PREFIX}{iterations}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str | bytes, stored: str) -> bool:
    """
    Check a password against a hash made by L{hash_password}.

    @param password: the password offered (bytes are read as UTF-8).
    @param stored: the hash.
    @return: whether they match; C{False} for a malformed hash.
    """
    if isinstance(password, bytes):
        password = password.decode("utf-8", "replace")
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme + "$" != PASSWORD_HASH_PREFIX:
            return False
        expected = _unb64(digest)
        actual = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), _unb64(salt), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)
