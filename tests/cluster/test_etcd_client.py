"""The etcd v3 client against a real 3-member etcd cluster on loopback ports."""

from __future__ import annotations

import tempfile
from pathlib import Path

from twisted.internet import defer, reactor
from twisted.trial.unittest import SkipTest, TestCase

from tests.interop.tomcat import free_port
from twisted_lb.cluster.etcd import Compacted, EtcdClient, EtcdError, StoreUnavailable

from .etcd_cluster import EtcdCluster, etcd_missing, post


def sleep(seconds: float) -> defer.Deferred[None]:
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


def ensure(coro):  # noqa: ANN001, ANN201
    return defer.Deferred.fromCoroutine(coro)


def make_pki(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate it signed (PEM files)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    paths: dict[str, Path] = {}

    def write(name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        paths[name] = directory / f"{name}.pem"
        paths[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[name + "_key"] = directory / f"{name}-key.pem"
        paths[name + "_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def build(subject: str, key, issuer, issuer_key, ca: bool, usage=None, ip=None):  # noqa: ANN001, ANN202
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        if ip is not None:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                critical=False,
            )
        return builder.sign(issuer_key or key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("twisted_lb test CA", ca_key, None, None, True)
    write("ca", ca, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    write(
        "server",
        build(
            "127.0.0.1",
            server_key,
            ca.subject,
            ca_key,
            False,
            # etcd's gateway connects to etcd itself with the server's certificate:
            # it needs clientAuth too.
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            "127.0.0.1",
        ),
        server_key,
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    write(
        "client",
        build(
            "twisted_lb", client_key, ca.subject, ca_key, False, [ExtendedKeyUsageOID.CLIENT_AUTH]
        ),
        client_key,
    )
    return paths


class EtcdClientTests(TestCase):
    timeout = 30

    @classmethod
    def setUpClass(cls) -> None:
        why = etcd_missing()
        if why:
            raise SkipTest(why)
        cls.tmp = tempfile.TemporaryDirectory(prefix="tlb-etcd-")
        cls.etcd = EtcdCluster(Path(cls.tmp.name))
        cls.etcd.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.etcd.stop()
        cls.tmp.cleanup()

    def setUp(self) -> None:
        self.client = EtcdClient(reactor, self.etcd.urls, timeout=1.0)
        self.addCleanup(self.client.close)
        self.prefix = f"/t/{self.id().rsplit('.', 1)[-1]}"

    async def _conditional_puts(self) -> None:
        key = self.prefix + "/a"
        written, rev1, current = await self.client.put_if(key, b"one", 0)
        self.assertTrue(written)
        self.assertIsNone(current)
        # Written at 0 again: the key exists now, refused, and told what is there.
        written, _, current = await self.client.put_if(key, b"two", 0)
        self.assertFalse(written)
        self.assertEqual((current.value, current.mod_revision), (b"one", rev1))
        written, rev2, _ = await self.client.put_if(key, b"two", rev1)
        self.assertTrue(written)
        self.assertGreater(rev2, rev1)
        # The same value again at a stale revision counts as done (a retried write).
        written, rev, _ = await self.client.put_if(key, b"two", rev1)
        self.assertTrue(written)
        self.assertEqual(rev, rev2)
        kvs, revision = await self.client.range_prefix(self.prefix + "/")
        self.assertEqual([(kv.key, kv.value) for kv in kvs], [(key, b"two")])
        self.assertGreaterEqual(revision, rev2)

    def test_conditional_put_and_range(self):
        """A put that compares mod_revision wins once; the loser learns the current value."""
        return ensure(self._conditional_puts())

    async def _watch(self) -> None:
        _, start = await self.client.range_prefix(self.prefix + "/")
        seen = []
        watch = self.client.watch(
            self.prefix + "/", start + 1, lambda batch, rev: seen.extend(batch)
        )
        watch.done.addErrback(lambda f: None)
        await sleep(0.2)
        await self.client.put(self.prefix + "/x", b"1")
        await self.client.delete(self.prefix + "/x")
        await self.client.put("/elsewhere", b"not watched")
        for _ in range(50):
            if len(seen) >= 2:
                break
            await sleep(0.02)
        watch.cancel()
        self.assertEqual(
            [(kind, kv.key) for kind, kv in seen],
            [("PUT", self.prefix + "/x"), ("DELETE", self.prefix + "/x")],
        )
        self.assertEqual(seen[0][1].value, b"1")

    def test_watch_streams_puts_and_deletes(self):
        return ensure(self._watch())

    async def _compacted(self) -> None:
        rev = await self.client.put(self.prefix + "/c", b"1")
        rev = await self.client.put(self.prefix + "/c", b"2")
        await self.client.post("/v3/kv/compaction", {"revision": str(rev)})
        watch = self.client.watch(self.prefix + "/", rev - 1, lambda batch, r: None)
        with self.assertRaises(Compacted):
            await watch.done

    def test_watch_from_a_compacted_revision_says_so(self):
        return ensure(self._compacted())

    async def _failover(self) -> None:
        dead = f"http://127.0.0.1:{free_port()}"
        client = EtcdClient(reactor, [dead, *self.etcd.urls], timeout=1.0)
        moved = []
        client.on_failover.append(moved.append)
        try:
            await client.put(self.prefix + "/f", b"1")
            self.assertEqual(client.endpoint, self.etcd.urls[0])
            self.assertEqual(moved, [self.etcd.urls[0]])
        finally:
            await client.close()
        nobody = EtcdClient(reactor, [dead], timeout=1.0)
        try:
            with self.assertRaises(StoreUnavailable) as e:
                await nobody.put(self.prefix + "/f", b"2")
            self.assertIn(dead, str(e.exception))
        finally:
            await nobody.close()

    def test_failover_to_the_next_endpoint_and_unavailable(self):
        """A refused endpoint is skipped; when none answers the error names them."""
        return ensure(self._failover())

    async def _lease(self) -> None:
        lease = await self.client.grant(1)
        await self.client.put(self.prefix + "/l", b"x", lease=lease)
        self.assertGreater(await self.client.keepalive(lease), 0)
        await self.client.revoke(lease)
        self.assertIsNone(await self.client.get(self.prefix + "/l"))
        self.assertEqual(await self.client.keepalive(lease), 0)

    def test_lease_keepalive_and_revoke(self):
        return ensure(self._lease())


class EtcdSecurityTests(TestCase):
    """etcd's own users, and TLS with client certificates (one member each)."""

    timeout = 30

    def setUp(self) -> None:
        why = etcd_missing()
        if why:
            raise SkipTest(why)
        directory = tempfile.TemporaryDirectory(prefix="tlb-etcd-")
        self.addCleanup(directory.cleanup)
        self.tmp = Path(directory.name)

    def start(self, cluster: EtcdCluster) -> EtcdCluster:
        cluster.start()
        self.addCleanup(cluster.stop)
        return cluster

    async def _users(self) -> None:
        etcd = self.start(EtcdCluster(self.tmp, size=1))
        url = etcd.urls[0]
        post(url, "/v3/auth/user/add", {"name": "root", "password": "rootpw"})
        post(url, "/v3/auth/user/grant", {"user": "root", "role": "root"})
        post(url, "/v3/auth/enable", {})
        client = EtcdClient(reactor, etcd.urls, timeout=1.0, user="root", password="rootpw")
        try:
            await client.put("/secured/a", b"1")
            self.assertEqual((await client.get("/secured/a")).value, b"1")
            # A token etcd no longer knows is replaced by a new one.
            client._token = "stale.token"
            self.assertEqual((await client.get("/secured/a")).value, b"1")
        finally:
            await client.close()
        wrong = EtcdClient(reactor, etcd.urls, timeout=1.0, user="root", password="nope")
        try:
            with self.assertRaises(EtcdError) as e:
                await wrong.get("/secured/a")
            self.assertIn("authentication failed", str(e.exception))
        finally:
            await wrong.close()
        anonymous = EtcdClient(reactor, etcd.urls, timeout=1.0)
        try:
            with self.assertRaises(EtcdError):
                await anonymous.get("/secured/a")
        finally:
            await anonymous.close()

    def test_user_and_password(self):
        return ensure(self._users())

    async def _tls(self) -> None:
        pki = make_pki(self.tmp)
        tls = {"cert": pki["server"], "key": pki["server_key"], "client_ca": pki["ca"]}
        etcd = EtcdCluster(self.tmp, size=1, tls=tls)
        etcd.ca, etcd.client_cert = pki["ca"], (pki["client"], pki["client_key"])
        self.start(etcd)
        self.assertTrue(etcd.urls[0].startswith("https://"))
        client = EtcdClient(
            reactor,
            etcd.urls,
            timeout=2.0,
            ca_file=str(pki["ca"]),
            certificate=str(pki["client"]),
            key=str(pki["client_key"]),
        )
        try:
            await client.put("/tls/a", b"1")
            self.assertEqual((await client.get("/tls/a")).value, b"1")
        finally:
            await client.close()
        # Without the client certificate etcd refuses the handshake: no endpoint answers.
        bare = EtcdClient(reactor, etcd.urls, timeout=2.0, ca_file=str(pki["ca"]))
        try:
            with self.assertRaises(StoreUnavailable):
                await bare.get("/tls/a")
        finally:
            await bare.close()

    def test_tls_with_a_client_certificate(self):
        return ensure(self._tls())
