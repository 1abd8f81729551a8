"""
The admin listener of a real ProxyService on loopback sockets, in front of
demo AJP nodes: the API with its cross-site checks, HTTP Basic
authentication, traffic following a manager action, the metrics, and
manager changes surviving a restart through the state file.
"""

from __future__ import annotations

import base64
import json
import os

import attrs
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from twisted_lb.admin import hash_password
from twisted_lb.config.apache import read_apache
from twisted_lb.config.model import (
    AdminConfig,
    BalancerConfig,
    ListenerConfig,
    MemberConfig,
    ProxyConfig,
    RouteConfig,
)
from twisted_lb.service import ProxyService

from ..integration.support import Client, Node

PASSWORD_HASH = hash_password("letmein", iterations=1000)


async def _port(service):
    return (await service._waitingForPort).getHost().port


def port_of(service) -> defer.Deferred[int]:
    """The port a listening service got (awaited, so that its Deferred keeps the port)."""
    return defer.Deferred.fromCoroutine(_port(service))


def config(nodes: list[Node], admin: AdminConfig) -> ProxyConfig:
    members = tuple(MemberConfig(url=n.url, route=n.name, ping=1.0) for n in nodes)
    return ProxyConfig(
        listeners=(ListenerConfig("tcp:0:interface=127.0.0.1"),),
        balancers=(BalancerConfig("cluster", members),),
        routes=(RouteConfig("/", "cluster"),),
        admin=admin,
    )


class AdminListenerTests(TestCase):
    timeout = 30

    def setUp(self):
        self.nodes = [Node("node1"), Node("node2")]
        self.client = Client()
        self.proxy = None
        self.state_file = self.mktemp()

    @defer.inlineCallbacks
    def start_proxy(self, **admin):
        admin.setdefault("endpoint", "tcp:0:interface=127.0.0.1")
        admin.setdefault("state_file", self.state_file)
        self.proxy = ProxyService(config(self.nodes, AdminConfig(**admin)), reactor)
        self.proxy.startService()
        port = yield port_of(self.proxy.listening[0])
        admin_port = yield port_of(self.proxy.admin.listening)
        self.base = f"http://127.0.0.1:{port}"
        self.admin = f"http://127.0.0.1:{admin_port}"

    @defer.inlineCallbacks
    def stop_proxy(self):
        if self.proxy is not None:
            yield self.proxy.stopService()
            self.proxy = None

    @defer.inlineCallbacks
    def tearDown(self):
        yield self.client.close()
        yield self.stop_proxy()
        for node in self.nodes:
            yield node.stop()

    def fetch(self, url, method=b"GET", headers=None, body=None):
        return defer.Deferred.fromCoroutine(self.client.request(url, method, headers, body))

    @defer.inlineCallbacks
    def nodes_answering(self, count):
        seen = []
        for _ in range(count):
            status, _, body = yield self.fetch(self.base + "/echo")
            self.assertEqual(status, 200)
            seen.append(json.loads(body)["node"])
        return seen

    def post(self, path, value, headers=None):
        return self.fetch(self.admin + path, b"POST", headers or {}, json.dumps(value).encode())

    @defer.inlineCallbacks
    def test_cross_site_checks_and_traffic_following(self):
        """POSTs without token or from another origin are refused; a disable moves traffic."""
        yield self.start_proxy()
        self.assertEqual(set((yield self.nodes_answering(4))), {"node1", "node2"})
        path = "/api/balancers/cluster/members/node1"
        status, _, body = yield self.post(path, {"action": "disable"})
        self.assertEqual((status, json.loads(body)["error"][:13]), (403, "missing token"))
        status, _, _ = yield self.post(path, {"action": "disable"}, {b"X-LB-Token": [b"nope"]})
        self.assertEqual(status, 403)
        status, _, _ = yield self.post(
            path, {"action": "disable"},
            {b"X-LB-Admin": [b"1"], b"Origin": [b"http://evil.example"]},
        )
        self.assertEqual(status, 403)
        self.assertEqual(set((yield self.nodes_answering(4))), {"node1", "node2"})
        status, _, body = yield self.post(
            path, {"action": "disable"}, {b"X-LB-Token": [self.proxy.admin.guard.token.encode()]}
        )
        self.assertEqual((status, json.loads(body)), (200, {"status": "disabled"}))
        self.assertEqual(set((yield self.nodes_answering(6))), {"node2"})
        status, _, body = yield self.fetch(self.admin + "/api/balancers/cluster/members/node1")
        self.assertEqual(json.loads(body)["status"], "disabled")

    @defer.inlineCallbacks
    def test_basic_auth(self):
        """With a password every admin resource asks for it; the right one opens them."""
        yield self.start_proxy(password=PASSWORD_HASH, user="ops")
        for path in ("/", "/api/balancers", "/metrics"):
            status, headers, _ = yield self.fetch(self.admin + path)
            self.assertEqual(status, 401)
            self.assertIn(b"basic", headers.getRawHeaders(b"www-authenticate")[0].lower())
        wrong = b"Basic " + base64.b64encode(b"ops:wrong")
        status, _, _ = yield self.fetch(self.admin + "/", headers={b"Authorization": [wrong]})
        self.assertEqual(status, 401)
        good = b"Basic " + base64.b64encode(b"ops:letmein")
        status, _, body = yield self.fetch(self.admin + "/", headers={b"Authorization": [good]})
        self.assertEqual(status, 200)
        self.assertIn(b"twisted_lb balancer manager", body)
        status, _, _ = yield self.post(
            "/api/balancers/cluster/members/node2", {"action": "drain"},
            {b"Authorization": [good], b"X-LB-Admin": [b"1"]},
        )
        self.assertEqual(status, 200)

    @defer.inlineCallbacks
    def test_allow_refuses_other_addresses_but_not_healthz(self):
        """admin.allow without the client's address: 403 before the password, /healthz open."""
        yield self.start_proxy(allow=("10.0.0.0/8",), password=PASSWORD_HASH)
        good = b"Basic " + base64.b64encode(b"admin:letmein")
        for path in ("/", "/api/balancers", "/metrics", "/static/x"):
            status, _, body = yield self.fetch(
                self.admin + path, headers={b"Authorization": [good]}
            )
            self.assertEqual(status, 403, path)
            self.assertIn(b"admin.allow", body)
        status, _, body = yield self.fetch(self.admin + "/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["status"], "ok")

    @defer.inlineCallbacks
    def test_allow_with_the_client_address_serves_the_page(self):
        yield self.start_proxy(allow=("127.0.0.1",))
        status, _, body = yield self.fetch(self.admin + "/")
        self.assertEqual(status, 200)
        self.assertIn(b"twisted_lb balancer manager", body)
        status, _, _ = yield self.fetch(self.admin + "/api/balancers")
        self.assertEqual(status, 200)

    @defer.inlineCallbacks
    def test_apache_manager_location_rules_the_admin_listener(self):
        """An Apache file's <Location /balancer-manager> Require ip: 403 to others, 404 on the path."""
        path = self.mktemp()
        os.makedirs(path)
        name = os.path.join(path, "httpd.conf")
        with open(name, "w") as f:
            f.write(
                "Listen 127.0.0.1:0\n"
                "<Proxy balancer://cluster>\n"
                f"    BalancerMember {self.nodes[0].url} route=node1\n"
                "</Proxy>\n"
                "ProxyPass /balancer-manager !\n"
                "ProxyPass / balancer://cluster/\n"
                "<Location /balancer-manager>\n"
                "    SetHandler balancer-manager\n"
                "    Require ip 10.0.0.0/8\n"
                "</Location>\n"
            )
        read, _ = read_apache(name)
        self.assertEqual(read.admin.allow, ("10.0.0.0/8",))
        admin = attrs.evolve(read.admin, endpoint="tcp:0:interface=127.0.0.1")
        self.proxy = ProxyService(attrs.evolve(read, admin=admin), reactor)
        self.proxy.startService()
        port = yield port_of(self.proxy.listening[0])
        admin_port = yield port_of(self.proxy.admin.listening)
        status, _, body = yield self.fetch(f"http://127.0.0.1:{admin_port}/")
        self.assertEqual((status, body[:13]), (403, b"403 Forbidden"))
        status, _, _ = yield self.fetch(f"http://127.0.0.1:{admin_port}/healthz")
        self.assertEqual(status, 200)
        status, _, _ = yield self.fetch(f"http://127.0.0.1:{port}/balancer-manager")
        self.assertEqual(status, 404)
        status, _, _ = yield self.fetch(f"http://127.0.0.1:{port}/echo")
        self.assertEqual(status, 200)

    @defer.inlineCallbacks
    def test_metrics_count_proxied_requests(self):
        yield self.start_proxy()
        yield self.nodes_answering(4)
        status, headers, body = yield self.fetch(self.admin + "/metrics")
        self.assertEqual(status, 200)
        total = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == "twisted_lb_requests_total" and sample.value:
                    total[(sample.labels["member"], sample.labels["code_class"])] = sample.value
        names = {self.nodes[0].url: 0, self.nodes[1].url: 0}
        for (member, code_class), value in total.items():
            self.assertEqual(code_class, "2xx")
            names[member] += value
        self.assertEqual(sum(names.values()), 4)
        self.assertTrue(all(names.values()), names)

    @defer.inlineCallbacks
    def test_changes_survive_a_restart(self):
        """Status, load factor and an added member come back from the state file."""
        yield self.start_proxy()
        self.nodes.append(Node("node3"))
        headers = {b"X-LB-Admin": [b"1"]}
        yield self.post("/api/balancers/cluster/members/node1", {"action": "drain"}, headers)
        yield self.post(
            "/api/balancers/cluster/members/node2", {"action": "loadfactor", "loadfactor": 7},
            headers,
        )
        status, _, body = yield self.post(
            "/api/balancers/cluster/members", {"url": self.nodes[2].url, "route": "node3"}, headers
        )
        self.assertEqual(status, 201, body)
        yield self.client.close()
        yield self.stop_proxy()
        self.proxy = ProxyService(
            config(self.nodes[:2], AdminConfig("tcp:0:interface=127.0.0.1", state_file=self.state_file)),
            reactor,
        )
        self.proxy.startService()
        port = yield port_of(self.proxy.admin.listening)
        self.admin = f"http://127.0.0.1:{port}"
        status, _, body = yield self.fetch(self.admin + "/api/balancers/cluster")
        members = {m["route"]: m for m in json.loads(body)["members"]}
        self.assertEqual(members["node1"]["status"], "draining")
        self.assertEqual(members["node2"]["loadfactor"], 7.0)
        self.assertEqual(members["node3"]["url"], self.nodes[2].url)


class AdminReloadTests(TestCase):
    """The manager's reload action re-reads the configuration file, as SIGHUP does."""

    timeout = 30

    def setUp(self):
        self.nodes = [Node("node1"), Node("node2")]
        self.client = Client()
        self.path = os.path.abspath(self.mktemp())
        self.state_file = os.path.abspath(self.mktemp())

    def write(self, nodes, broken=False):
        members = ", ".join(f'{{ url = "{n.url}", route = "{n.name}" }}' for n in nodes)
        text = (
            'listen = [{ endpoint = "tcp:0:interface=127.0.0.1" }]\n'
            f'admin = {{ endpoint = "tcp:0:interface=127.0.0.1", state_file = "{self.state_file}" }}\n'
            f"[balancers.cluster]\nmembers = [{members}]\n"
            + ("loadfactor_typo = 3\n" if broken else "")
            + '[[routes]]\npath = "/"\nbalancer = "cluster"\n'
        )
        with open(self.path, "w") as f:
            f.write(text)

    @defer.inlineCallbacks
    def tearDown(self):
        yield self.client.close()
        yield self.proxy.stopService()
        for node in self.nodes:
            yield node.stop()

    def fetch(self, url, method=b"GET", headers=None, body=None):
        return defer.Deferred.fromCoroutine(self.client.request(url, method, headers, body))

    @defer.inlineCallbacks
    def test_reload_action(self):
        from twisted_lb.config import load_config

        self.write(self.nodes[:1])
        self.proxy = ProxyService(load_config(self.path), reactor)
        self.proxy.startService()
        base = f"http://127.0.0.1:{(yield port_of(self.proxy.listening[0]))}"
        admin = f"http://127.0.0.1:{(yield port_of(self.proxy.admin.listening))}"
        token = {b"X-LB-Token": [self.proxy.admin.guard.token.encode()]}
        # A manager change, then a reload that adds node2: both hold afterwards.
        status, _, _ = yield self.fetch(
            admin + "/api/balancers/cluster/members/node1", b"POST", token,
            json.dumps({"action": "loadfactor", "loadfactor": 3}).encode(),
        )
        self.assertEqual(status, 200)
        self.write(self.nodes)
        status, _, body = yield self.fetch(admin + "/api/reload", b"POST", token, b"{}")
        self.assertEqual(status, 200, body)
        self.assertIn("members added: cluster/node2", json.loads(body)["reloaded"])
        members = {m.route: m for m in self.proxy.balancers["cluster"].balancer.members}
        self.assertEqual((set(members), members["node1"].loadfactor), ({"node1", "node2"}, 3))
        seen = []
        for _ in range(8):
            status, _, body = yield self.fetch(base + "/echo")
            seen.append(json.loads(body)["node"])
        self.assertEqual((seen.count("node1"), seen.count("node2")), (6, 2))
        # A broken file is refused with the reason; the running configuration stays.
        self.write(self.nodes[:1], broken=True)
        status, _, body = yield self.fetch(admin + "/api/reload", b"POST", token, b"{}")
        self.assertEqual(status, 409)
        self.assertIn("loadfactor_typo", json.loads(body)["error"])
        self.assertEqual(len(self.proxy.balancers["cluster"].balancer.members), 2)
        # Without the token, no reload.
        status, _, _ = yield self.fetch(admin + "/api/reload", b"POST", {}, b"{}")
        self.assertEqual(status, 403)
