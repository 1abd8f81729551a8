"""
The manager: applies an operator's action to the running balancers, logs
who did what, records it in the state file and keeps the metrics' label
children in step with added members.  The HTML page and the JSON API both
act through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet import defer
from twisted.logger import Logger

from twisted_lb.config.model import ConfigError

from .actions import ActionError, add_member, find_balancer, member_action, plan_action, plan_add
from .metrics import RequestMetrics
from .state import StateFile

__all__ = ["Manager"]

_log = Logger()


class SharedStore(Protocol):
    """
    A store shared with other proxies (L{twisted_lb.cluster.shared.SharedState}):
    a change is written there first and applied from there.
    """

    def write(self, balancer: str, route: str, change: dict[str, Any]) -> defer.Deferred[int]:
        """
        Record C{change} with a revision check, then apply it; fails with an
        L{ActionError} naming the store (409: changed meanwhile, 503: down).
        """


class Manager:
    """
    @ivar balancers: the running balancers by name (the proxy's own dict).
    @ivar state: where changes are recorded.
    @ivar store: the store shared with other proxies, or C{None}: then
        L{act} and L{add} apply at once and return their result; with one
        they return a Deferred that fires once the store took the change.
    """

    def __init__(
        self,
        balancers: dict[str, Any],
        state: StateFile,
        metrics: RequestMetrics | None = None,
        reload: Callable[[], Any] | None = None,
        on_change: Callable[[], None] | None = None,
        store: SharedStore | None = None,
    ) -> None:
        self.balancers = balancers
        self.state = state
        self.store = store
        self._metrics = metrics
        self._reload = reload
        self._on_change = on_change

    def reload(self, *, who: str) -> str:
        """
        Reload the configuration file, as SIGHUP does.

        @return: what changed, in words.
        @raise ActionError: the new configuration is not valid (409: the running one stays).
        """
        if self._reload is None:
            raise ActionError(404, "this proxy has no configuration file to reload")
        _log.info("manager: {who}: reload of the configuration", who=who)
        try:
            summary = self._reload()
        except ConfigError as e:
            _log.error("manager: reload refused, the running configuration stays: {error}", error=e)
            raise ActionError(409, f"reload refused, the running configuration stays: {e}") from None
        describe = getattr(summary, "describe", None)
        return str(describe() if describe is not None else summary)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def act(
        self, balancer: str, route: str, action: str, loadfactor: Any = None, *, who: str
    ) -> dict[str, Any] | defer.Deferred[dict[str, Any]]:
        """
        Apply a member action (see L{member_action}).

        @param who: the operator (user and address), for the log.
        @return: what changed.
        @raise ActionError: the action cannot be done.
        """
        built = find_balancer(self.balancers, balancer)
        if self.store is not None:
            planned = plan_action(built, route, action, loadfactor)

            def written(revision: int) -> dict[str, Any]:
                _log.info(
                    "manager: {who}: {action} member {route} of balancer {balancer}: {change} "
                    "(shared store revision {revision})",
                    who=who, action=action, route=route, balancer=balancer, change=planned,
                    revision=revision,
                )
                return planned

            return self.store.write(balancer, route, planned).addCallback(written)
        change = member_action(built, route, action, loadfactor)
        _log.info(
            "manager: {who}: {action} member {route} of balancer {balancer}: {change}",
            who=who, action=action, route=route, balancer=balancer, change=change,
        )
        self.state.record(balancer, route, change)
        self._changed()
        return change

    def add(
        self, balancer: str, url: str, route: str = "", loadfactor: Any = 1.0, *, who: str
    ) -> dict[str, Any] | defer.Deferred[dict[str, Any]]:
        """
        Add a member (see L{add_member}).

        @return: what was recorded: the member's URL, route and load factor.
        @raise ActionError: the member cannot be added.
        """
        built = find_balancer(self.balancers, balancer)
        if self.store is not None:
            mconf = plan_add(built, url, route, loadfactor)
            planned = {"url": mconf.url, "loadfactor": mconf.loadfactor}
            new_route = mconf.effective_route

            def written(revision: int) -> dict[str, Any]:
                _log.info(
                    "manager: {who}: added member {url} route {route} to balancer {balancer} "
                    "(shared store revision {revision})",
                    who=who, url=mconf.url, route=new_route, balancer=balancer, revision=revision,
                )
                return dict(planned, route=new_route)

            return self.store.write(balancer, new_route, planned).addCallback(written)
        member = add_member(built, url, route, loadfactor)
        if self._metrics is not None:
            self._metrics.bind(balancer, member.name)
        change = {"url": built.member_configs[member].url, "loadfactor": member.loadfactor}
        _log.info(
            "manager: {who}: added member {url} route {route} to balancer {balancer}",
            who=who, url=change["url"], route=member.route, balancer=balancer,
        )
        self.state.record(balancer, member.route, change)
        self._changed()
        return dict(change, route=member.route)
