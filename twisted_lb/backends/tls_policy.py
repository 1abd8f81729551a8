"""
TLS towards C{https://} members: one connection creator per member, built
once at start-up from the member's L{BackendTLSConfig}.

With C{verify} on (the default, pitfall 17 of the reference notes) the chain
is checked against the system trust store or C{ca_file} and the host name
against the certificate with C{service_identity}, as Twisted's
C{optionsForClientTLS} does. With C{verify} off, neither is checked (Apache's
C{SSLProxyVerify none} with C{SSLProxyCheckPeerName off}); TLS 1.2 or newer is
required either way, and the member's host name goes out as SNI.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from OpenSSL import SSL
from service_identity import VerificationError
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from twisted_lb.config.model import MemberConfig

__all__ = ["MemberTLSPolicy", "describe_verify_error"]

_MIN_VERSION = ssl.TLSVersion.TLSv1_2

#: OpenSSL's X509_V_ERR_* codes users meet with members, and their meaning.
_VERIFY_ERRORS = {
    2: "unable to get issuer certificate",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    23: "certificate revoked",
    24: "invalid CA certificate",
    26: "unsupported certificate purpose",
}
_UNTRUSTED = frozenset({2, 18, 19, 20, 21})


def describe_verify_error(code: int) -> str:
    """
    The words for an OpenSSL certificate verification error code, with a
    hint when the usual cause is a certificate nobody vouches for.

    @param code: an C{X509_V_ERR_*} value.
    """
    text = _VERIFY_ERRORS.get(code, f"X509 verify error {code}")
    if code in _UNTRUSTED:
        text += (
            "; trust its CA with tls.ca_file (Apache: SSLProxyCACertificateFile), or set"
            " tls.verify = false (Apache: SSLProxyCheckPeerName off) for self-signed members"
        )
    return text


def _certificates(path: str) -> list[ssl.Certificate]:
    pem = Path(path).read_bytes()
    end = b"-----END CERTIFICATE-----"
    blocks = [b + end + b"\n" for b in pem.split(end)[:-1] if b"-----BEGIN CERTIFICATE-----" in b]
    if not blocks:
        raise ValueError(f"{path}: no PEM certificate found")
    return [ssl.Certificate.loadPEM(block) for block in blocks]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@implementer(IOpenSSLClientConnectionCreator)
class _Verified:
    """
    Connections that check the chain (OpenSSL, against the context's trust
    roots) and the leaf's host name or IP address (C{service_identity}), as
    Twisted's C{optionsForClientTLS} does; the same checks, but done in a
    verify callback of ours so that a refusal can say why (pyOpenSSL's error
    only says "certificate verify failed").

    @ivar last_failure: why the last refused certificate was refused.
    """

    def __init__(self, context: SSL.Context, hostname: str) -> None:
        self._context = context
        self._hostname = hostname
        self._is_ip = _is_ip(hostname)
        self._sni = None if self._is_ip else hostname.encode("idna")
        self.last_failure: str | None = None

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        connection.set_app_data(tlsProtocol)
        if self._sni:
            connection.set_tlsext_host_name(self._sni)
        connection.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verify)
        return connection

    def _verify(
        self, connection: SSL.Connection, certificate: Any, code: int, depth: int, ok: int
    ) -> bool:
        # Never raise here: OpenSSL cannot carry a Python exception.
        if not ok:
            self.last_failure = "certificate verify failed: " + describe_verify_error(code)
            return False
        if depth != 0:
            return True
        try:
            leaf = certificate.to_cryptography()
            if self._is_ip:
                verify_certificate_ip_address(leaf, self._hostname)
            else:
                verify_certificate_hostname(leaf, self._hostname)
        except VerificationError:
            self.last_failure = (
                f"the certificate is not valid for {self._hostname}; use a name the "
                "certificate lists as the member host, or set tls.verify = false"
                " (Apache: SSLProxyCheckPeerName off)"
            )
            return False
        except Exception as e:
            self.last_failure = f"the certificate could not be checked: {e}"
            return False
        self.last_failure = None
        return True


@implementer(IOpenSSLClientConnectionCreator)
class _Unverified:
    """Connections with neither chain nor host name checks, SNI still sent."""

    def __init__(self, context: SSL.Context, hostname: str) -> None:
        self._context = context
        self._sni = None if _is_ip(hostname) else hostname.encode("idna")

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        connection.set_app_data(tlsProtocol)
        if self._sni:
            connection.set_tlsext_host_name(self._sni)
        return connection


@implementer(IPolicyForHTTPS)
class MemberTLSPolicy:
    """
    The TLS policy of one member; the same connection creator serves every
    connection to it.

    @ivar hostname: the member's host name (SNI and the name checked).
    @ivar verify: whether chain and host name are checked.
    """

    def __init__(self, member: MemberConfig) -> None:
        tls = member.tls
        self.hostname = member.host
        self.verify = tls.verify
        extra: dict[str, Any] = {}
        if tls.client_certificate:
            client = ssl.PrivateCertificate.loadPEM(Path(tls.client_certificate).read_bytes())
            extra = {"privateKey": client.privateKey.original, "certificate": client.original}
        self.creator: Any
        if tls.verify:
            trust = (
                ssl.trustRootFromCertificates(_certificates(tls.ca_file))
                if tls.ca_file
                else ssl.platformTrust()
            )
            options = ssl.CertificateOptions(trustRoot=trust, raiseMinimumTo=_MIN_VERSION, **extra)
            self.creator = _Verified(options.getContext(), self.hostname)
        else:
            options = ssl.CertificateOptions(verify=False, raiseMinimumTo=_MIN_VERSION, **extra)
            self.creator = _Unverified(options.getContext(), self.hostname)

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        """The member's creator (whatever the URL said: it is built for the member)."""
        return self.creator  # type: ignore[no-any-return]

    def verify_failure(self) -> str | None:
        """
        Why the last certificate of this member was refused, in words, or
        C{None} (verification off, or nothing refused yet). Read it while
        handling the failed handshake.
        """
        return getattr(self.creator, "last_failure", None)
