"""
TLS contexts, built once at start-up: the certificate an HTTPS listener
presents, and self-signed certificates for the demo and tests.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any

from OpenSSL import SSL, crypto
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from zope.interface import implementer

from twisted_lb.config.model import TLSConfig

__all__ = ["server_context", "make_self_signed", "h2_available", "openssl_reason"]


def h2_available() -> bool:
    """
    Whether HTTP/2 can be offered: C{twisted.web} serves it only when both
    C{h2} and C{priority} are installed (C{twisted[http2]}). Offering C{h2}
    over ALPN without them would drop every client that accepts it.
    """
    from twisted.web.http import H2_ENABLED

    return bool(H2_ENABLED)


def openssl_reason(error: Exception) -> str:
    """The last reason in an OpenSSL error, in words."""
    try:
        return str(error.args[0][-1][2])
    except (IndexError, TypeError):
        return str(error) or type(error).__name__


def server_context(tls: TLSConfig) -> IOpenSSLServerConnectionCreator:
    """
    The server-side TLS context for a listener: TLS 1.2 or newer, Twisted's
    (Mozilla-derived) cipher list, the chain file appended, HTTP/1.1 over
    ALPN; Twisted adds the protocols of the site it wraps
    (L{twisted_lb.frontend.FrontendSite.acceptableProtocols}: C{h2} first
    when the listener offers HTTP/2).

    @raise OSError: a file cannot be read.
    @raise ValueError: the certificate or key cannot be parsed.
    """
    cert_pem = Path(tls.certificate).read_bytes()
    key_pem = cert_pem if tls.key == tls.certificate else Path(tls.key).read_bytes()
    chain_pem = Path(tls.chain).read_bytes() if tls.chain else b""
    try:
        certificate = ssl.PrivateCertificate.loadPEM(cert_pem + b"\n" + key_pem)
        chain: list[Any] = [
            ssl.Certificate.loadPEM(block + b"-----END CERTIFICATE-----\n").original
            for block in chain_pem.split(b"-----END CERTIFICATE-----")[:-1]
        ]
    except (crypto.Error, SSL.Error) as e:
        files = ", ".join(dict.fromkeys(f for f in (tls.certificate, tls.key, tls.chain) if f))
        raise ValueError(
            f"{files}: not a PEM certificate and private key ({openssl_reason(e)})"
        ) from None
    settings: dict[str, Any] = {}
    if tls.ciphers:
        try:
            SSL.Context(SSL.TLS_METHOD).set_cipher_list(tls.ciphers.encode("ascii"))
        except (SSL.Error, UnicodeEncodeError) as e:
            raise ValueError(f"ciphers {tls.ciphers!r}: no cipher OpenSSL knows ({e})") from None
        settings["acceptableCiphers"] = ssl.AcceptableCiphers.fromOpenSSLCipherString(tls.ciphers)
    if "TLSv1.3" not in tls.protocols:
        settings["lowerMaximumSecurityTo"] = ssl.TLSVersion.TLSv1_2
    options = ssl.CertificateOptions(
        privateKey=certificate.privateKey.original,
        certificate=certificate.original,
        extraCertChain=chain or None,
        raiseMinimumTo=(
            ssl.TLSVersion.TLSv1_2 if "TLSv1.2" in tls.protocols else ssl.TLSVersion.TLSv1_3
        ),
        acceptableProtocols=[b"http/1.1"],
        **settings,
    )
    if tls.client_certificates != "none":
        return _ClientCertificateOptions(options, tls)
    return options


def _accept_any(connection: Any, certificate: Any, errno: int, depth: int, ok: int) -> bool:
    """C{optional_no_ca}: any client certificate is taken, the application decides."""
    return True


def _as_checked(connection: Any, certificate: Any, errno: int, depth: int, ok: int) -> bool:
    """C{optional}, C{require}: OpenSSL's verdict against C{client_ca}."""
    return bool(ok)


@implementer(IOpenSSLServerConnectionCreator)
class _ClientCertificateOptions:
    """
    Twisted's C{CertificateOptions}, whose contexts also ask clients for a
    certificate, as Apache's C{SSLVerifyClient}.
    """

    def __init__(self, options: ssl.CertificateOptions, tls: TLSConfig) -> None:
        self._options = options
        self._mode = tls.client_certificates
        self._cas: list[Any] = []
        if tls.client_ca:
            pem = Path(tls.client_ca).read_bytes()
            try:
                self._cas = [
                    crypto.load_certificate(
                        crypto.FILETYPE_PEM, block + b"-----END CERTIFICATE-----\n"
                    )
                    for block in pem.split(b"-----END CERTIFICATE-----")[:-1]
                ]
            except crypto.Error as e:
                raise ValueError(
                    f"{tls.client_ca}: not PEM certificates ({openssl_reason(e)})"
                ) from None
            if not self._cas:
                raise ValueError(f"{tls.client_ca}: no PEM certificate in it")
        self._context: SSL.Context | None = None

    def getContext(self) -> SSL.Context:  # noqa: N802 (Twisted's name)
        if self._context is None:
            context = self._options.getContext()
            flags = SSL.VERIFY_PEER
            if self._mode == "require":
                flags |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
            store = context.get_cert_store()
            for ca in self._cas:
                if store is not None:
                    store.add_cert(ca)
                context.add_client_ca(ca)
            context.set_verify(
                flags, _accept_any if self._mode == "optional_no_ca" else _as_checked
            )
            # Sessions of a context that checks peers need an id context to be resumed.
            context.set_session_id(b"twisted_lb")
            self._context = context
        return self._context

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:  # noqa: N802, N803
        return SSL.Connection(self.getContext(), None)


def make_self_signed(cert_path: Path, key_path: Path, hostname: str = "localhost") -> None:
    """
    Write a self-signed certificate (RSA 2048, SHA-256, one year, for
    C{hostname}, C{127.0.0.1} and C{::1}) and its key as PEM files.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(hostname),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
