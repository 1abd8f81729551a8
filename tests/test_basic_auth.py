"""Tests for L{twisted_lb.basic_auth}: htpasswd files and the Basic check."""

from __future__ import annotations

import base64

import pytest

from twisted_lb.basic_auth import Authenticator, AuthRule, AuthRules, apr1, read_htpasswd, verify

# Made with: htpasswd -nbB alice s3cret; htpasswd -nbs bob pw; htpasswd -nbm carol pw2
ALICE = b"$2y$05$L1ZpaTgzxkvEQviclFOSZO4PhvoVTPAZealnugzWtiXPRtNdfI.8y"
BOB = b"{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM="
CAROL = b"$apr1$oOgdeThn$AP5uzEbsFWetWg01n4EUH0"


def basic(credentials: bytes) -> bytes:
    return b"Basic " + base64.b64encode(credentials)


def test_hashes_made_by_htpasswd() -> None:
    """bcrypt, {SHA} and $apr1$ hashes verify the right password only."""
    assert verify(b"s3cret", ALICE) and not verify(b"s3cret!", ALICE)
    assert verify(b"pw", BOB) and not verify(b"pW", BOB)
    assert verify(b"pw2", CAROL) and not verify(b"pw", CAROL)
    # openssl passwd -apr1 -salt abcdefgh secret
    assert apr1(b"secret", b"abcdefgh") == b"$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/"
    assert not verify(b"x", b"crypt-hash")


def test_read_htpasswd(tmp_path) -> None:
    """The file gives users and hashes; other hash kinds are refused with the line."""
    path = tmp_path / "users"
    path.write_bytes(b"# users\nalice:" + ALICE + b"\n\nbob:" + BOB + b"\n")
    assert read_htpasswd(str(path)) == {"alice": ALICE, "bob": BOB}
    path.write_bytes(b"alice:" + ALICE + b"\ndave:abJnggxhB/yWI\n")
    with pytest.raises(ValueError, match="line 2: the hash of 'dave'"):
        read_htpasswd(str(path))


def test_authenticator_and_rules(tmp_path) -> None:
    """Only listed users pass; the last rule covering the path decides; checks are remembered."""
    path = tmp_path / "users"
    path.write_bytes(b"alice:" + ALICE + b"\nbob:" + BOB + b"\n")
    only_bob = Authenticator(AuthRule("/", "R", str(path), ("bob",)), read_htpasswd(str(path)))
    assert only_bob.allows(basic(b"bob:pw"))
    assert not only_bob.allows(basic(b"alice:s3cret"))
    assert not only_bob.allows(b"Bearer x") and not only_bob.allows(None)
    assert not only_bob.allows(b"Basic !!!")
    rules = AuthRules((AuthRule("/app", "App", str(path)), AuthRule("/app/public", "", "")))
    assert rules.challenge(b"/app/x", None) == b'Basic realm="App"'
    assert rules.challenge(b"/app/x", basic(b"alice:s3cret")) is None
    assert rules.challenge(b"/app/public/x", None) is None
    assert rules.challenge(b"/other", None) is None
    assert rules.challenge(b"/%61pp/x", None) == b'Basic realm="App"'
