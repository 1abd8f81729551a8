"""
The proxies of a group, as etcd knows them: each registers itself under a
lease, at C{PREFIX/instances/NAME}, with its address, version, start time and
its own view of member health (health checks stay per proxy), and renews the
lease every second; a proxy that stops or dies disappears when its lease
expires. L{Instances} keeps the list every proxy shows in its manager,
marking the ones that are gone and the members whose health the proxies see
differently.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from .etcd import EtcdClient, EtcdError, KeyValue, StoreUnavailable

__all__ = ["Instances", "LEASE_TTL", "health_view"]

_log = Logger()

#: Seconds an instance stays listed after its last renewal.
LEASE_TTL = 5
#: Seconds between renewals.
HEARTBEAT = 1.0
#: How long a gone instance stays on the list.
FORGET_AFTER = 3600.0


def health_view(balancers: dict[str, Any]) -> dict[str, dict[str, str]]:
    """This proxy's view of each member: C{"ok"} or C{"error: REASON"}, by balancer and route."""
    view: dict[str, dict[str, str]] = {}
    for name, built in balancers.items():
        members = view[name] = {}
        for m in built.balancer.snapshot()["members"]:
            members[m["route"]] = (
                f"error: {m['error_reason'] or 'unknown'}" if m["in_error"] else "ok"
            )
    return view


class Instances:
    """
    This proxy's registration, and the list of the group's proxies.

    @ivar known: by instance name: C{{"info": {...}, "gone_since": None | float}}.
    """

    def __init__(
        self,
        client: EtcdClient,
        prefix: str,
        reactor: Any,
        own: Callable[[], dict[str, Any]] | None,
        heard: Callable[[bool, str], None],
        name: str,
    ) -> None:
        """
        @param own: what this proxy registers (called at every renewal), or
            C{None} for a process that only follows (a worker that is not the
            admin one).
        @param heard: told whether each renewal reached the store.
        """
        self.client = client
        self.prefix = prefix
        self.name = name
        self.known: dict[str, dict[str, Any]] = {}
        self._reactor = reactor
        self._own = own
        self._heard = heard
        self._lease = 0
        self._written: str | None = None
        self._written_at = 0.0
        self._busy = False
        self._loop = LoopingCall(self._beat)
        self._loop.clock = reactor

    def key(self, name: str) -> str:
        return f"{self.prefix}/instances/{quote(name, safe='')}"

    def start(self) -> None:
        """
        Register, then renew every L{HEARTBEAT} seconds; a process that does
        not register asks the store for a key as often instead. Either way the
        store is known to be up or down, and a member that stopped answering
        (hung, cut off from the others) is left for another, where the watch
        follows.
        """
        self._loop.start(HEARTBEAT, now=True)

    def stop(self) -> defer.Deferred[None]:
        """Stop renewing and end the lease (this proxy leaves the list at once)."""
        if self._loop.running:
            self._loop.stop()
        lease, self._lease = self._lease, 0
        if not lease:
            return defer.succeed(None)
        d = defer.Deferred.fromCoroutine(self.client.revoke(lease))
        return d.addErrback(lambda f: None)

    def _beat(self) -> None:
        if self._busy:
            return
        self._busy = True
        d = defer.Deferred.fromCoroutine(self._renew())

        def done(result: object) -> None:
            self._busy = False

        d.addErrback(self._failed).addBoth(done)

    async def _renew(self) -> None:
        if self._own is None:
            await self.client.get(self.key(self.name))  # a linearizable read: needs a quorum
            self._heard(True, "")
            return
        info = self._own()
        text = json.dumps(info, sort_keys=True)
        now = self._reactor.seconds()
        if self._lease:
            ttl = await self.client.keepalive(self._lease)
            if ttl <= 0:
                _log.warn(
                    "etcd: the lease of instance {name} expired: registering again", name=self.name
                )
                self._lease = 0
        if not self._lease:
            self._lease = await self.client.grant(LEASE_TTL)
            self._written = None
        if text != self._written or now - self._written_at > 10 * HEARTBEAT:
            await self.client.put(self.key(self.name), text.encode(), lease=self._lease)
            self._written, self._written_at = text, now
        self._heard(True, "")

    def _failed(self, failure: Any) -> None:
        if failure.check(StoreUnavailable, EtcdError):
            self._heard(False, failure.getErrorMessage())
        else:
            _log.failure("etcd: renewing instance {name}", failure, name=self.name)

    # -- the list ------------------------------------------------------------

    def seen(self, key: str, kv: KeyValue | None) -> None:
        """A change under C{PREFIX/instances/} (from the watch stream)."""
        head = self.prefix + "/instances/"
        if not key.startswith(head):
            return
        name = unquote(key[len(head) :])
        now = time.time()
        if kv is None:
            entry = self.known.get(name)
            if entry is not None and entry["gone_since"] is None:
                entry["gone_since"] = now
                _log.warn("etcd: instance {name} is gone (its lease ended)", name=name)
            return
        try:
            info = json.loads(kv.value)
        except ValueError:
            return
        if isinstance(info, dict):
            self.known[name] = {"info": info, "gone_since": None}

    def resync(self, keys: set[str]) -> None:
        """After the whole state was read again: instances whose key is gone are gone."""
        present = {
            unquote(k[len(self.prefix + "/instances/") :])
            for k in keys
            if k.startswith(self.prefix + "/instances/")
        }
        for name in list(self.known):
            if name not in present:
                self.seen(self.key(name), None)

    def describe(self) -> dict[str, Any]:
        """
        The list for the manager: every instance (present or gone) and the
        members the present ones see differently.
        """
        now = time.time()
        for name, entry in list(self.known.items()):
            gone = entry["gone_since"]
            if gone is not None and now - gone > FORGET_AFTER:
                del self.known[name]
        instances = []
        views: dict[tuple[str, str], dict[str, str]] = {}
        for name in sorted(self.known):
            entry = self.known[name]
            info = entry["info"]
            instances.append(
                {
                    "name": name,
                    "address": info.get("address", ""),
                    "version": info.get("version", ""),
                    "started": info.get("started"),
                    "pid": info.get("pid"),
                    "gone_since": entry["gone_since"],
                    "this": name == self.name,
                }
            )
            if entry["gone_since"] is None:
                for balancer, members in (info.get("health") or {}).items():
                    for route, health in members.items():
                        views.setdefault((balancer, route), {})[name] = health
        disagreements = [
            {"balancer": b, "route": r, "views": dict(sorted(v.items()))}
            for (b, r), v in sorted(views.items())
            if len(set(v.values())) > 1
        ]
        return {"instances": instances, "disagreements": disagreements}
