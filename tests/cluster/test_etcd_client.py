"""The etcd v3 client against a real 3-member etcd cluster on loopback ports."""

from __future__ import annotations

import tempfile
from pathlib import Path

from twisted.internet import defer, reactor
from twisted.trial.unittest import SkipTest, TestCase

from tests.interop.tomcat import free_port
from twisted_lb.cluster.etcd import Compacted, EtcdClient, StoreUnavailable

from .etcd_cluster import EtcdCluster, etcd_missing


def sleep(seconds: float) -> defer.Deferred[None]:
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


def ensure(coro):  # noqa: ANN001, ANN201
    return defer.Deferred.fromCoroutine(coro)


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
