"""
Adding and removing members of a running proxy (what the manager and a reload
do), on real loopback sockets with demo AJP nodes.
"""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from twisted_lb.config.model import MemberConfig

from .support import Client, Node, start_proxy


class MemberChangeTests(TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.nodes = [Node("node1"), Node("node2")]
        self.proxy, self.base = yield defer.Deferred.fromCoroutine(start_proxy(self.nodes[:1]))
        self.built = self.proxy.balancers["cluster"]
        self.client = Client()

    @defer.inlineCallbacks
    def tearDown(self):
        yield self.client.close()
        yield self.proxy.stopService()
        for node in self.nodes:
            yield node.stop()

    @defer.inlineCallbacks
    def nodes_answering(self, count):
        seen = []
        for _ in range(count):
            status, _, body = yield defer.Deferred.fromCoroutine(
                self.client.request(self.base + "/echo")
            )
            self.assertEqual(status, 200)
            seen.append(json.loads(body)["node"])
        return seen

    @defer.inlineCallbacks
    def test_added_member_takes_requests_at_once(self):
        """A member added at run time gets its share of the next requests."""
        self.assertEqual(set((yield self.nodes_answering(4))), {"node1"})
        member = self.built.add_member(MemberConfig(url=self.nodes[1].url, route="node2"))
        self.assertEqual(member.route, "node2")
        self.assertEqual((yield self.nodes_answering(4)).count("node2"), 2)

    def test_add_refuses_a_taken_route_and_a_foreign_scheme(self):
        with self.assertRaises(ValueError):
            self.built.add_member(MemberConfig(url=self.nodes[1].url, route="node1"))
        with self.assertRaises(ValueError):
            self.built.add_member(MemberConfig(url="ws://127.0.0.1:1", route="ws"))
        self.assertEqual(len(self.built.balancer.members), 1)

    @defer.inlineCallbacks
    def test_removed_member_gets_no_new_request_and_is_closed(self):
        member = self.built.add_member(MemberConfig(url=self.nodes[1].url, route="node2"))
        self.assertIn("node2", (yield self.nodes_answering(4)))
        yield self.built.remove_member(member)
        self.assertNotIn(member, self.built.backends)
        self.assertNotIn(member, self.built.dispatcher.backends)
        self.assertEqual(set((yield self.nodes_answering(6))), {"node1"})
