"""
TLS on both sides: the frontend accepts TLS 1.2 and newer with strong
ciphers only; an HTTPS member is verified by default, and a member whose
certificate has expired or names another host gets a 502 and a log line
that says why.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.integration import test_http_members as http_members
from twisted_lb.config.model import (
    BackendTLSConfig,
    BalancerConfig,
    ListenerConfig,
    MemberConfig,
    ProxyConfig,
    RouteConfig,
    TLSConfig,
)
from twisted_lb.service import ProxyService
from twisted_lb.testing import FaultyAJPMember
from twisted_lb.tls import make_self_signed

_NOW = datetime.datetime.now(datetime.timezone.utc)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write(path: Path, cert: x509.Certificate, key: rsa.RSAPrivateKey | None = None) -> None:
    data = cert.public_bytes(serialization.Encoding.PEM)
    if key is not None:
        data += key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    path.write_bytes(data)


def make_ca_and_leaf(
    directory: Path,
    *,
    names: list[x509.GeneralName],
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> tuple[str, str]:
    """
    A CA and a leaf certificate it signed.

    @return: the CA certificate file and the leaf's certificate-and-key file.
    """
    ca_key, leaf_key = _key(), _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "twisted_lb test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW - datetime.timedelta(days=30))
        .not_valid_after(_NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "member")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, leaf_file = directory / "ca.pem", directory / "leaf.pem"
    _write(ca_file, ca)
    _write(leaf_file, leaf, leaf_key)
    return str(ca_file), str(leaf_file)


_LOCALHOST_IP = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))


class MemberCertificateTests(http_members._Base):
    """An HTTPS member whose certificate a CA we trust signed, but which is still wrong."""

    @defer.inlineCallbacks
    def check_refused(self, ca: str, leaf: str, reason: str):
        node = self.member("secure", tls=TLSConfig(leaf, leaf))
        base = yield self.proxy(
            [MemberConfig(url=node.url, route="secure", tls=BackendTLSConfig(ca_file=ca))]
        )
        status, _, body = yield self.get(base + "/echo")
        self.assertEqual(status, 502)
        self.assertNotIn(b"secure", body)
        lines = [line for line in self.logged if reason in line.lower()]
        self.assertTrue(lines, self.logged[-5:])
        self.assertIn(f"https://127.0.0.1:{node.port}", lines[0])
        return lines[0]

    @defer.inlineCallbacks
    def test_valid_certificate_from_the_ca_is_200(self):
        """The control: the same CA, a current certificate for 127.0.0.1."""
        directory = Path(self.mktemp())
        directory.mkdir()
        ca, leaf = make_ca_and_leaf(
            directory,
            names=[_LOCALHOST_IP],
            not_before=_NOW - datetime.timedelta(days=1),
            not_after=_NOW + datetime.timedelta(days=1),
        )
        node = self.member("secure", tls=TLSConfig(leaf, leaf))
        base = yield self.proxy(
            [MemberConfig(url=node.url, route="secure", tls=BackendTLSConfig(ca_file=ca))]
        )
        status, _, _ = yield self.get(base + "/echo")
        self.assertEqual(status, 200)

    @defer.inlineCallbacks
    def test_expired_certificate_is_502(self):
        directory = Path(self.mktemp())
        directory.mkdir()
        ca, leaf = make_ca_and_leaf(
            directory,
            names=[_LOCALHOST_IP],
            not_before=_NOW - datetime.timedelta(days=10),
            not_after=_NOW - datetime.timedelta(days=1),
        )
        yield self.check_refused(ca, leaf, "certificate has expired")

    @defer.inlineCallbacks
    def test_certificate_for_another_host_is_502(self):
        directory = Path(self.mktemp())
        directory.mkdir()
        ca, leaf = make_ca_and_leaf(
            directory,
            names=[x509.DNSName("other.example")],
            not_before=_NOW - datetime.timedelta(days=1),
            not_after=_NOW + datetime.timedelta(days=1),
        )
        yield self.check_refused(ca, leaf, "the certificate is not valid for 127.0.0.1")

    def test_verification_is_on_by_default(self):
        self.assertTrue(MemberConfig(url="https://h:1").tls.verify)


async def _listening_port(proxy: ProxyService):
    # Awaiting leaves the port in the Deferred for stopService; yielding it would not.
    return await proxy.listening[0]._waitingForPort


class FrontendTLSTests(TestCase):
    """What a client can and cannot negotiate with an HTTPS listener."""

    timeout = 20

    @defer.inlineCallbacks
    def setUp(self):
        directory = Path(self.mktemp())
        directory.mkdir()
        cert, key = directory / "cert.pem", directory / "key.pem"
        make_self_signed(cert, key)
        member = FaultyAJPMember().start()
        self.addCleanup(member.stop)
        config = ProxyConfig(
            listeners=(
                ListenerConfig("tcp:0:interface=127.0.0.1", tls=TLSConfig(str(cert), str(key))),
            ),
            balancers=(BalancerConfig("cluster", (MemberConfig(member.url, route="n1"),)),),
            routes=(RouteConfig("/", "cluster"),),
        )
        self.proxy = ProxyService(config, reactor)
        self.proxy.startService()
        self.addCleanup(self.proxy.stopService)
        port = yield defer.Deferred.fromCoroutine(_listening_port(self.proxy))
        self.port = port.getHost().port

    def handshake(self, configure) -> defer.Deferred[tuple[str, str] | str]:
        """
        Try a handshake in a thread with a client that allows everything
        OpenSSL can still do, narrowed by C{configure(context)}.

        @return: (version, cipher) or the error text.
        """

        def talk():
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            context.set_ciphers("ALL:@SECLEVEL=0")
            configure(context)
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw:
                try:
                    with context.wrap_socket(raw) as tls:
                        return tls.version(), tls.cipher()[0]
                except (ssl.SSLError, ConnectionResetError, OSError) as e:
                    return str(e)

        return deferToThread(talk)

    @defer.inlineCallbacks
    def test_tls_below_1_2_refused(self):
        for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):

            def only(context, version=version):
                context.minimum_version = version
                context.maximum_version = version

            result = yield self.handshake(only)
            self.assertIsInstance(result, str, f"{version.name} was accepted: {result}")
            # Refused by the server (an alert), not by our own client library.
            self.assertNotIn("NO_PROTOCOLS_AVAILABLE", result)
            self.assertNotIn("NO_CIPHERS_AVAILABLE", result)
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):

            def only(context, version=version):
                context.minimum_version = version
                context.maximum_version = version

            result = yield self.handshake(only)
            self.assertEqual(result[0], version.name.replace("_", ".").replace("TLSv1.", "TLSv1."))

    @defer.inlineCallbacks
    def test_weak_ciphers_refused(self):
        """TLS 1.2 offering only NULL, anonymous or MD5 suites (and RC4, 3DES, export, DES, IDEA, SEED where this OpenSSL still has them): no handshake."""
        weak = ("RC4", "3DES", "eNULL", "EXP", "aNULL", "MD5", "DES", "IDEA", "SEED")
        tried = []
        for suite in weak:

            def narrow(context, suite=suite):
                context.maximum_version = ssl.TLSVersion.TLSv1_2
                context.set_ciphers(suite + ":@SECLEVEL=0")

            try:
                result = yield self.handshake(narrow)
            except ssl.SSLError:
                continue  # this OpenSSL cannot even offer it
            self.assertIsInstance(result, str, f"{suite} was accepted: {result}")
            if "NO_CIPHERS_AVAILABLE" not in result:
                tried.append(suite)
        self.assertGreaterEqual(len(tried), 3, tried)

        def strong(context):
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            context.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")

        result = yield self.handshake(strong)
        self.assertEqual(result, ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"))
