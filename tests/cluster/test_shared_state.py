"""
Three proxies sharing one runtime state through a real 3-member etcd
cluster on loopback ports (members started and stopped by PID): manager
changes reach every proxy from the watch stream, concurrent changes end in
one state, the store's failures leave the proxies serving and refuse
changes (503), and a randomized run of changes while etcd members come and
go ends with every proxy's state equal to the store's.
"""

from __future__ import annotations

import json
import random
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from treq.client import HTTPClient
from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from tests.integration.support import Node
from tests.interop.tomcat import free_port
from twisted_lb.cluster.etcd import EtcdClient
from twisted_lb.config import load_toml_text
from twisted_lb.service import ProxyService

from .etcd_cluster import EtcdCluster, etcd_missing

ROUTES = ("node1", "node2", "node3")


def sleep(seconds: float) -> defer.Deferred[None]:
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


def ensure(coro: Any) -> defer.Deferred[Any]:
    return defer.Deferred.fromCoroutine(coro)


class Instance:
    """One in-process proxy with its own listener, admin listener and [cluster] table."""

    def __init__(
        self, name: str, etcd: list[str], prefix: str, nodes: list[Node], http: HTTPClient
    ) -> None:
        self.name = name
        self.http = http
        self.port, self.admin_port = free_port(), free_port()
        members = "".join(
            f'[[balancers.app.members]]\nurl = "{n.url}"\nroute = "{n.name}"\nping = 1.0\n'
            for n in nodes
        )
        text = f"""
workers = 1
[[listen]]
endpoint = "tcp:{self.port}:interface=127.0.0.1"
[balancers.app]
probe_interval = 0
{members}
[[routes]]
path = "/"
balancer = "app"
[admin]
endpoint = "tcp:{self.admin_port}:interface=127.0.0.1"
[cluster]
etcd = {json.dumps(etcd)}
prefix = "{prefix}"
instance = "{name}"
timeout = 1.0
"""
        self.text = text
        self.config = load_toml_text(text, f"<{name}>")
        self.service = ProxyService(self.config, reactor)
        self.base = f"http://127.0.0.1:{self.port}"
        self.admin = f"http://127.0.0.1:{self.admin_port}"

    def start(self) -> defer.Deferred[None]:
        self.service.startService()
        return self.service.cluster.ready

    def stop(self) -> defer.Deferred[None]:
        return defer.maybeDeferred(self.service.stopService)

    async def act(
        self, route: str, action: str, loadfactor: float | None = None
    ) -> tuple[int, Any]:
        body: dict[str, Any] = {"action": action}
        if loadfactor is not None:
            body["loadfactor"] = loadfactor
        response = await self.http.post(
            f"{self.admin}/api/balancers/app/members/{route}",
            json=body,
            timeout=10,
            headers={"X-LB-Admin": "1"},
        )
        return response.code, await response.json()

    async def get(self, path: str) -> Any:
        response = await self.http.get(self.admin + path, timeout=5)
        if path == "/metrics":
            return (await response.text()), response.code
        return await response.json()

    def members(self) -> dict[str, tuple[str, float]]:
        """What this proxy's balancer does now: status and load factor by route."""
        return {
            m.route: (m.status.value, m.loadfactor)
            for m in self.service.balancers["app"].balancer.members
        }


def expected(state: dict[str, dict[str, dict[str, Any]]]) -> dict[str, tuple[str, float]]:
    """The members as the store's state says they are (the file has them active, loadfactor 1)."""
    out = {route: ("active", 1.0) for route in ROUTES}
    for route, change in state.get("app", {}).items():
        status, lf = out[route]
        out[route] = (change.get("status", status), float(change.get("loadfactor", lf)))
    return out


class SharedStateTests(TestCase):
    timeout = 60

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

    @defer.inlineCallbacks
    def setUp(self):
        for member in self.etcd.members:
            if not member.running:
                member.start()
        self.etcd.wait_healthy()
        self.prefix = f"/twisted_lb/{self.id().rsplit('.', 1)[-1]}"
        # No keep-alive: no connection outlives its request (the reactor is clean at the end).
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPClient(Agent(reactor, pool=self.pool))
        self.nodes = [Node(route) for route in ROUTES]
        self.instances = [
            Instance(name, self.etcd.urls, self.prefix, self.nodes, self.http)
            for name in ("a", "b", "c")
        ]
        for instance in self.instances:
            yield instance.start()
        self.store = EtcdClient(reactor, self.etcd.urls, timeout=1.0)

    @defer.inlineCallbacks
    def tearDown(self):
        for instance in self.instances:
            yield instance.stop()
        for node in self.nodes:
            yield node.stop()
        yield self.store.close()
        yield self.pool.closeCachedConnections()
        yield sleep(0.1)  # the last closes reach both ends

    async def store_state(self) -> dict[str, dict[str, dict[str, Any]]]:
        kvs, _ = await self.store.range_prefix(self.prefix + "/state/")
        state: dict[str, dict[str, dict[str, Any]]] = {}
        for kv in kvs:
            balancer, route = kv.key[len(self.prefix) + len("/state/") :].split("/")
            state.setdefault(balancer, {})[route] = json.loads(kv.value)
        return state

    async def until(self, check: Any, timeout: float, what: str) -> float:
        """Poll C{check()} every 10 ms; return the seconds it took."""
        start = time.monotonic()
        while not check():
            if time.monotonic() - start > timeout:
                self.fail(f"{what}: not within {timeout} s")
            await sleep(0.01)
        return time.monotonic() - start

    # -- tests ---------------------------------------------------------------

    async def _drain_everywhere(self) -> None:
        a, b, c = self.instances
        code, body = await a.act("node2", "drain")
        self.assertEqual((code, body), (200, {"status": "draining"}))
        self.assertEqual(a.members()["node2"][0], "draining")  # applied here at once
        took = await self.until(
            lambda: all(i.members()["node2"][0] == "draining" for i in (b, c)),
            1.0,
            "drain on a applied on b and c",
        )
        self.assertLess(took, 1.0)
        self.assertEqual(await self.store_state(), {"app": {"node2": {"status": "draining"}}})
        for instance in self.instances:
            state = await instance.get("/api/cluster")
            self.assertEqual(state["state"], {"app": {"node2": {"status": "draining"}}})

    def test_drain_on_one_is_applied_on_all_within_a_second(self):
        return ensure(self._drain_everywhere())

    async def _startup(self) -> None:
        a = self.instances[0]
        self.assertEqual((await a.act("node1", "disable"))[0], 200)
        self.assertEqual((await a.act("node3", "loadfactor", 7))[0], 200)
        late = Instance("d", self.etcd.urls, self.prefix, self.nodes, self.http)
        self.instances.append(late)
        listener = late.service.listening[0]
        states_when_listening = []
        start_listening = listener.startService

        def spy() -> None:
            states_when_listening.append(late.members())
            start_listening()

        listener.startService = spy  # type: ignore[method-assign]
        late.service.startService()
        self.assertFalse(listener.running)  # not before the store answered
        await late.service.cluster.ready
        # The stored state was applied before the listener started.
        self.assertEqual(
            states_when_listening,
            [{"node1": ("disabled", 1.0), "node2": ("active", 1.0), "node3": ("active", 7.0)}],
        )
        await self.until(lambda: late.service.listening[0].running, 2.0, "listening")

    def test_stored_state_is_applied_before_serving(self):
        return ensure(self._startup())

    async def _concurrent(self) -> None:
        a, b, c = self.instances
        results = await defer.gatherResults(
            [ensure(a.act("node1", "disable")), ensure(b.act("node1", "standby"))]
        )
        codes = sorted(code for code, _ in results)
        self.assertIn(codes, ([200, 409], [200, 200]))
        state = await self.store_state()
        winner = state["app"]["node1"]["status"]
        if codes == [200, 409]:
            loser = next(body for code, body in results if code == 409)
            self.assertIn("changed meanwhile by another proxy", loser["error"])
            self.assertIn(winner, loser["error"])
        await self.until(
            lambda: all(i.members()["node1"][0] == winner for i in self.instances),
            1.0,
            "one state everywhere",
        )

    def test_concurrent_changes_end_in_one_state(self):
        """Two proxies change one member at once: one wins, the other gets 409 (never a silent overwrite)."""
        return ensure(self._concurrent())

    async def _stale_write_conflicts(self) -> None:
        a, b, _ = self.instances
        # b has not applied a's change yet when it writes: its revision check fails.
        await b.service.cluster.shared.stop()  # b stops following
        self.assertEqual((await a.act("node1", "standby"))[0], 200)
        self.assertEqual((await a.act("node3", "drain"))[0], 200)
        code, body = await b.act("node3", "disable")
        self.assertEqual(code, 409, body)
        self.assertIn('"status": "draining"', body["error"])
        # The refusal brought b's node3 up to date, and only node3.
        self.assertEqual(b.members()["node3"][0], "draining")
        self.assertEqual(b.members()["node1"][0], "active")
        # Following again, b gets the change made before (the refusal did not move it past it).
        b.service.cluster.shared.start(5.0)
        await self.until(lambda: b.members()["node1"][0] == "standby", 2.0, "earlier change")

    async def _form(self) -> None:
        a, b, c = self.instances
        token = a.service.admin.guard.token
        form = {"token": token, "balancer": "app", "route": "node1", "action": "standby"}
        response = await self.http.post(a.admin + "/action", data=form, allow_redirects=False)
        self.assertEqual(response.code, 303)
        self.assertIn(b"standby", response.headers.getRawHeaders("location")[0].encode())
        await self.until(
            lambda: all(i.members()["node1"][0] == "standby" for i in self.instances),
            1.0,
            "form change applied everywhere",
        )
        c.service.cluster.shared.stop()
        await b.act("node1", "enable")
        form = {
            "token": c.service.admin.guard.token,
            "balancer": "app",
            "route": "node1",
            "action": "disable",
        }
        response = await self.http.post(c.admin + "/action", data=form, allow_redirects=False)
        self.assertEqual(response.code, 409)
        self.assertIn("changed meanwhile by another proxy", await response.text())

    def test_page_forms_go_through_the_store(self):
        return ensure(self._form())

    async def _reload(self) -> None:
        a, b, _ = self.instances
        self.assertEqual((await a.act("node2", "drain"))[0], 200)
        await self.until(lambda: b.members()["node2"][0] == "draining", 1.0, "drain applied")
        # A reload that rebuilds node2 (its ping changed) keeps the shared state.
        text = b.text.replace('route = "node2"\nping = 1.0', 'route = "node2"\nping = 2.0')
        self.assertNotEqual(text, b.text)
        member = b.service.balancers["app"].balancer.member_by_route("node2")
        b.service.reload(load_toml_text(text, "<b>"))
        self.assertIsNot(b.service.balancers["app"].balancer.member_by_route("node2"), member)
        self.assertEqual(b.members()["node2"][0], "draining")

    def test_reload_keeps_the_shared_state(self):
        return ensure(self._reload())

    async def _compacted(self) -> None:
        a, b, _ = self.instances
        shared = b.service.cluster.shared
        seen = shared.revision
        await shared.stop()  # b is cut off
        self.assertEqual((await a.act("node1", "drain"))[0], 200)
        self.assertEqual((await a.act("node2", "loadfactor", 3))[0], 200)
        revision = await self.store.put("/elsewhere", b"x")
        await self.store.post("/v3/kv/compaction", {"revision": str(revision)})
        self.assertEqual(b.members()["node1"], ("active", 1.0))
        reloads = []
        reload = shared.reload

        async def counted() -> None:
            reloads.append(shared.revision)
            await reload()

        shared.reload = counted  # type: ignore[method-assign]
        shared.start(5.0)  # back: its revision is gone, so it reads the whole state
        await self.until(
            lambda: b.members()["node1"][0] == "draining" and b.members()["node2"][1] == 3.0,
            3.0,
            "caught up after the compaction",
        )
        self.assertEqual(reloads, [0])  # one whole reload, after the watch said "compacted"
        self.assertGreater(shared.revision, seen)
        self.assertEqual(shared.changes, await self.store_state())

    def test_catching_up_past_a_compaction_reloads_the_whole_state(self):
        return ensure(self._compacted())

    def test_a_change_from_a_stale_view_is_refused(self):
        return ensure(self._stale_write_conflicts())

    async def steady_requests(self, instance: Instance, seconds: float) -> list[int]:
        codes = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            response = await self.http.get(instance.base + "/echo", timeout=5)
            await response.content()
            codes.append(response.code)
        return codes

    async def _leader_killed(self) -> None:
        a, b, _ = self.instances
        traffic = ensure(self.steady_requests(a, 2.0))
        await sleep(0.3)
        self.etcd.leader().kill()
        codes = await traffic
        self.assertTrue(codes)
        self.assertEqual(set(codes), {200})
        # Changes still go through (the client moves to a live member).
        for _ in range(50):
            code, _ = await b.act("node2", "drain")
            if code == 200:
                break
            await sleep(0.1)
        self.assertEqual(code, 200)
        await self.until(
            lambda: all(i.members()["node2"][0] == "draining" for i in self.instances),
            2.0,
            "change after the leader died",
        )

    async def _hung_member(self) -> None:
        a, b, c = self.instances
        hung = self.etcd.members[0]  # every proxy starts with the first endpoint
        self.assertTrue(all(i.service.cluster.client.endpoint == hung.url for i in self.instances))
        hung.process.send_signal(signal.SIGSTOP)
        try:
            code, body = await a.act("node3", "standby")  # times out there, then another member
            self.assertEqual(code, 200, body)
            # b and c watched the hung member: their next check moves them, and they catch up.
            await self.until(
                lambda: all(i.members()["node3"][0] == "standby" for i in (b, c)),
                4.0,
                "change applied by the proxies that watched the hung member",
            )
            self.assertTrue(
                all(i.service.cluster.client.endpoint != hung.url for i in self.instances)
            )
        finally:
            hung.process.send_signal(signal.SIGCONT)

    def test_a_hung_etcd_member_is_left_for_another(self):
        return ensure(self._hung_member())

    def test_killing_the_etcd_leader_changes_nothing_for_clients(self):
        return ensure(self._leader_killed())

    async def _all_down(self) -> None:
        a, b, c = self.instances
        self.assertEqual((await a.act("node1", "drain"))[0], 200)
        await self.until(
            lambda: all(i.members()["node1"][0] == "draining" for i in self.instances),
            1.0,
            "drain applied",
        )
        for member in self.etcd.members:
            member.stop()
        for instance in self.instances:
            codes = await self.steady_requests(instance, 0.3)
            self.assertEqual(set(codes), {200})
        code, body = await b.act("node2", "disable")
        self.assertEqual(code, 503)
        self.assertIn("etcd", body["error"])
        self.assertIn("refused", body["error"])
        self.assertEqual(b.members()["node2"][0], "active")  # nothing applied locally
        await self.until(lambda: a.service.cluster.shared.up is False, 3.0, "store seen down")
        metrics, _ = await a.get("/metrics")
        self.assertIn("twisted_lb_cluster_store_up{", metrics)
        self.assertRegex(metrics, r"twisted_lb_cluster_store_up\{[^}]*\} 0\.0")
        cluster = await a.get("/api/cluster")
        self.assertIs(cluster["up"], False)
        self.assertIn("etcd", cluster["problem"] or cluster["store"])
        page = await self.http.get(a.admin + "/", timeout=5)
        self.assertIn("is <b>down</b>", await page.text())
        # The state applied stays.
        self.assertEqual({i.members()["node1"][0] for i in self.instances}, {"draining"})
        for member in self.etcd.members:
            member.start()
        self.etcd.wait_healthy()
        await self.until(
            lambda: all(i.service.cluster.shared.up for i in self.instances), 5.0, "store back"
        )
        self.assertEqual((await b.act("node2", "disable"))[0], 200)
        await self.until(
            lambda: all(i.members()["node2"][0] == "disabled" for i in self.instances),
            1.0,
            "change after the store came back",
        )
        self.assertEqual(
            await self.store_state(),
            {"app": {"node1": {"status": "draining"}, "node2": {"status": "disabled"}}},
        )

    def test_store_down_serves_refuses_changes_and_recovers(self):
        return ensure(self._all_down())

    async def _instances(self) -> None:
        a, b, c = self.instances
        await self.until(
            lambda: len(a.service.cluster.instances.describe()["instances"]) == 3,
            3.0,
            "three instances registered",
        )
        cluster = await a.get("/api/cluster")
        self.assertEqual([i["name"] for i in cluster["instances"]], ["a", "b", "c"])
        self.assertEqual([i["this"] for i in cluster["instances"]], [True, False, False])
        self.assertTrue(all(i["gone_since"] is None for i in cluster["instances"]))
        # b alone sees node3 in error: the proxies disagree, and the page says so.
        built = b.service.balancers["app"]
        built.balancer.record_failure(built.balancer.member_by_route("node3"), "connection refused")
        await self.until(
            lambda: a.service.cluster.instances.describe()["disagreements"], 3.0, "disagreement"
        )
        disagreement = a.service.cluster.instances.describe()["disagreements"][0]
        self.assertEqual((disagreement["balancer"], disagreement["route"]), ("app", "node3"))
        self.assertEqual(disagreement["views"]["a"], "ok")
        self.assertTrue(disagreement["views"]["b"].startswith("error"))
        await c.stop()
        self.instances.remove(c)
        await self.until(
            lambda: a.service.cluster.instances.known["c"]["gone_since"] is not None,
            2.0,
            "c marked gone",
        )
        page = await (await self.http.get(a.admin + "/", timeout=5)).text()
        self.assertIn('id="instances"', page)
        self.assertIn("gone", page)
        self.assertIn("sees error", page)

    def test_instances_are_listed_gone_ones_marked_disagreements_shown(self):
        return ensure(self._instances())

    async def _randomized(self) -> None:
        rng = random.Random(18)
        actions = ("enable", "drain", "disable", "standby", "loadfactor")
        outcomes: dict[int, int] = {}
        chaos_running = [True]

        async def chaos() -> None:
            while chaos_running[0]:
                await sleep(rng.uniform(0.1, 0.4))
                member = rng.choice(self.etcd.members)
                # In a thread: a graceful stop waits for etcd to exit (seconds
                # on a busy machine), which would stall the proxies under test.
                await deferToThread(member.stop if member.running else member.start)

        async def actor(count: int) -> None:
            for _ in range(count):
                instance = rng.choice(self.instances)
                action = rng.choice(actions)
                lf = rng.randint(1, 100) if action == "loadfactor" else None
                code, _ = await instance.act(rng.choice(ROUTES), action, lf)
                outcomes[code] = outcomes.get(code, 0) + 1
                await sleep(0.01)  # spread the actions over the members' stops and starts

        chaos_done = ensure(chaos())
        # 300 actions by three concurrent actors: each action waits for a
        # write through raft, and one after the other they took over the
        # test's minute on a loaded machine.
        await defer.gatherResults([ensure(actor(100)) for _ in range(3)], consumeErrors=True)
        chaos_running[0] = False
        await chaos_done
        for member in self.etcd.members:
            if not member.running:
                member.start()
        self.etcd.wait_healthy()
        self.assertEqual(set(outcomes) - {200, 409, 503}, set(), outcomes)
        self.assertGreater(outcomes.get(200, 0), 0, outcomes)
        print(f"randomized: outcomes by status {outcomes}")
        state = await self.store_state()
        want = expected(state)

        def converged() -> bool:
            return all(
                i.service.cluster.shared.changes == state and i.members() == want
                for i in self.instances
            )

        await self.until(converged, 10.0, f"every instance equal to the store ({outcomes})")
        for instance in self.instances:
            self.assertEqual((await instance.get("/api/cluster"))["state"], state)
        # Every proxy takes changes again.
        for instance in self.instances:
            await self.until(lambda i=instance: i.service.cluster.shared.up, 5.0, "store up")
            code, body = await instance.act("node1", "enable")
            self.assertEqual(code, 200, body)

    def test_randomized_actions_while_etcd_members_come_and_go(self):
        return ensure(self._randomized())
