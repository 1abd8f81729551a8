"""
The runtime state a group of proxies shares through etcd: what operators
changed in any proxy's manager, one key per member::

    PREFIX/state/BALANCER/ROUTE = {"status": "draining", "loadfactor": 2.0}

(balancer and route percent-encoded; the values are those of the state
file, see L{twisted_lb.admin.state}). A change is written first, with a
transaction that compares the key's C{mod_revision} with the one this proxy
applied last, so that of two concurrent changes to a member one wins and the
other is refused (L{Conflict}); every proxy then applies it from the watch
stream, through the one function that applies manager changes
(L{twisted_lb.admin.state.apply_changes}).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_lb.admin.actions import ActionError

from .etcd import Compacted, EtcdClient, EtcdError, KeyValue, StoreUnavailable, Watch

__all__ = ["Conflict", "SharedState", "StoreDown", "merge_change", "state_key"]

_log = Logger()

Changes = dict[str, dict[str, dict[str, Any]]]


class StoreDown(ActionError):
    """The store cannot take a change now (503); the message names it."""

    def __init__(self, message: str) -> None:
        super().__init__(503, message)


class Conflict(ActionError):
    """Another change to the member was written first (409); the message says what is there now."""

    def __init__(self, message: str) -> None:
        super().__init__(409, message)


def state_key(prefix: str, balancer: str, route: str) -> str:
    """The key of one member's shared state."""
    return f"{prefix}/state/{quote(balancer, safe='')}/{quote(route, safe='')}"


def _parse_state_key(prefix: str, key: str) -> tuple[str, str] | None:
    head = prefix + "/state/"
    if not key.startswith(head):
        return None
    balancer, slash, route = key[len(head) :].partition("/")
    if not slash or "/" in route:
        return None
    return unquote(balancer), unquote(route)


def merge_change(current: dict[str, Any] | None, change: dict[str, Any]) -> dict[str, Any]:
    """
    A member's recorded state after C{change}: an added or removed member
    replaces what was there; a status or load factor is merged into it (as
    the state file records changes).
    """
    if change.get("removed") or "url" in change or not current or current.get("removed"):
        return dict(change)
    return {**current, **change}


#: What a member state in the store may hold, and the type of each.
_FIELDS: dict[str, tuple[type, ...]] = {
    "status": (str,),
    "loadfactor": (int, float),
    "url": (str,),
    "removed": (bool,),
}


def _decode(kv: KeyValue) -> dict[str, Any] | None:
    """A member state read from the store, or C{None} (logged) when it is not one."""
    try:
        value = json.loads(kv.value)
    except ValueError:
        value = None
    problem = ""
    if not isinstance(value, dict):
        problem = "is not a JSON object"
    else:
        for name, field in value.items():
            allowed = _FIELDS.get(name)
            if allowed is None:
                problem = f"has an unknown field {name!r}"
            elif not isinstance(field, allowed) or (
                isinstance(field, bool) and bool not in allowed
            ):
                problem = f"has a {name!r} of the wrong type ({field!r})"
    if problem:
        _log.error(
            "etcd: {key} {problem}: not a member state, ignored", key=kv.key, problem=problem
        )
        return None
    return value  # type: ignore[no-any-return]


class SharedState:
    """
    This proxy's copy of the group's state, kept in step with etcd.

    @ivar changes: the state applied here, by balancer and route (the form
        of the state file).
    @ivar revision: the store revision this copy is at.
    @ivar up: whether the store answered last time (C{None}: not yet asked).
    @ivar problem: why it is down, in words.
    @ivar ready: fires once the stored state was applied at start-up (or the
        store could not be reached in time: then the file's state serves).
    """

    def __init__(
        self,
        client: EtcdClient,
        prefix: str,
        apply: Callable[[Changes], Any],
        reactor: Any,
        on_other: Callable[[str, KeyValue | None], None] | None = None,
        on_reload: Callable[[set[str]], None] | None = None,
    ) -> None:
        """
        @param apply: applies changes to the running balancers (the control
            interface every manager change goes through).
        @param on_other: called with keys under the prefix that are not
            member states (and C{None} for a deleted one's value).
        @param on_reload: called with every key there is after the whole
            state was read again (keys deleted meanwhile are not in it).
        """
        self.client = client
        self.prefix = prefix
        self.changes: Changes = {}
        self.revision = 0
        self.up: bool | None = None
        self.problem = ""
        self.ready: defer.Deferred[None] = defer.Deferred()
        self._apply = apply
        self._reactor = reactor
        self._on_other = on_other
        self._on_reload = on_reload
        self._key_revisions: dict[tuple[str, str], int] = {}
        self._watch: Watch | None = None
        self._running = False
        self._restart: Any = None
        self._delay = 0.0
        client.on_failover.append(self._failover)

    # -- following ----------------------------------------------------------

    def start(self, ready_timeout: float) -> None:
        """Load the stored state and follow the store; C{ready} fires within C{ready_timeout}."""
        self._running = True

        def not_ready() -> None:
            if not self.ready.called:
                _log.error(
                    "{store} did not answer within {timeout} s: serving with the configuration "
                    "file's member states until it does ({problem})",
                    store=self.client.describe(),
                    timeout=ready_timeout,
                    problem=self.problem,
                )
                self.ready.callback(None)

        self._ready_timer = self._reactor.callLater(ready_timeout, not_ready)
        self._follow()

    def stop(self) -> defer.Deferred[None]:
        """Stop following; fires once the watch's connection is closed."""
        self._running = False
        if self._restart is not None and self._restart.active():
            self._restart.cancel()
        if getattr(self, "_ready_timer", None) is not None and self._ready_timer.active():
            self._ready_timer.cancel()
        if self._watch is not None:
            watch, self._watch = self._watch, None
            watch.cancel()
            return watch.closed
        return defer.succeed(None)

    def _failover(self, endpoint: str) -> None:
        # Requests moved to another member: the watch may sit on a member that
        # lost the others (it would say nothing); follow from the new one.
        if self._watch is not None and self._watch.endpoint != endpoint:
            watch, self._watch = self._watch, None
            watch.cancel()
            self._schedule(0)

    def _schedule(self, delay: float) -> None:
        if not self._running or (self._restart is not None and self._restart.active()):
            return
        self._restart = self._reactor.callLater(delay, self._follow)

    def _follow(self) -> None:
        if not self._running or self._watch is not None:
            return
        defer.Deferred.fromCoroutine(self._catch_up()).addErrback(self._follow_failed)

    async def _catch_up(self) -> None:
        if self.revision == 0:
            await self.reload()
        else:
            # Ask through the failover logic first, so the watch goes to a member that answers.
            await self.client.get(self.prefix + "/state")
        if not self._running or self._watch is not None:
            return  # stopped meanwhile, or another catch-up got there first
        watch = self.client.watch(self.prefix + "/", self.revision + 1, self._events)
        self._watch = watch
        watch.done.addErrback(self._watch_ended, watch)
        self._mark_up()
        self._delay = 0.0

    def _follow_failed(self, failure: Failure) -> None:
        if failure.check(StoreUnavailable, EtcdError):
            self._mark_down(failure.getErrorMessage())
        else:
            _log.failure("etcd: following the store", failure)
        self._delay = min(1.0, self._delay * 2 or 0.1)
        self._schedule(self._delay)

    def _watch_ended(self, failure: Failure, watch: Watch) -> None:
        if self._watch is watch:
            self._watch = None
        if not self._running:
            return
        if failure.check(Compacted):
            _log.warn(
                "etcd: revision {revision} was compacted: reloading the whole state",
                revision=self.revision + 1,
            )
            self.revision = 0
        elif self._watch is None:
            _log.info("etcd: watch ended ({why}); following again", why=failure.getErrorMessage())
        self._schedule(0.05)

    async def reload(self) -> None:
        """Read the whole state and apply what differs from this copy."""
        kvs, revision = await self.client.range_prefix(self.prefix + "/")
        seen: set[tuple[str, str]] = set()
        batch = []
        for kv in kvs:
            names = _parse_state_key(self.prefix, kv.key)
            if names is not None:
                seen.add(names)
            batch.append(("PUT", kv))
        for names in list(self._key_revisions):
            if names not in seen:
                self._forget(*names)
        self._events(batch, revision)
        if self._on_reload is not None:
            self._on_reload({kv.key for kv in kvs})
        self.revision = max(self.revision, revision)
        if not self.ready.called:
            self._ready_timer.cancel()
            self.ready.callback(None)

    def _forget(self, balancer: str, route: str) -> None:
        self._key_revisions.pop((balancer, route), None)
        members = self.changes.get(balancer, {})
        members.pop(route, None)
        if not members:
            self.changes.pop(balancer, None)

    def _events(self, batch: list[tuple[str, KeyValue]], revision: int | None) -> None:
        """
        Apply a batch of changes; C{revision}: where the watch (or a whole
        read) now is, C{None} for a key read on its own (the watch position
        stays, so the changes before it still come).
        """
        todo: Changes = {}
        for kind, kv in batch:
            names = _parse_state_key(self.prefix, kv.key)
            if names is None:
                if self._on_other is not None:
                    self._on_other(kv.key, None if kind == "DELETE" else kv)
                continue
            if kind == "DELETE":
                self._forget(*names)
                continue
            if kv.mod_revision <= self._key_revisions.get(names, 0):
                continue  # applied already (written here)
            value = _decode(kv)
            if value is None:
                continue
            self._record(names, value, kv.mod_revision)
            todo.setdefault(names[0], {})[names[1]] = value
        if revision is not None:
            self.revision = max(self.revision, revision)
        if todo:
            self._apply(todo)

    def _record(self, names: tuple[str, str], value: dict[str, Any], revision: int) -> None:
        self._key_revisions[names] = revision
        self.changes.setdefault(names[0], {})[names[1]] = value

    # -- health ---------------------------------------------------------------

    def _mark_down(self, problem: str) -> None:
        self.problem = problem
        if self.up is not False:
            self.up = False
            _log.error(
                "etcd: the shared store is down: {problem}; serving with the last state applied "
                "(revision {revision}); manager changes are refused until it is back",
                problem=problem,
                revision=self.revision,
            )

    def _mark_up(self) -> None:
        if self.up is not True:
            was = self.up
            self.up = True
            self.problem = ""
            if was is False:
                _log.info(
                    "etcd: the shared store is back ({endpoint}); caught up to revision {revision}",
                    endpoint=self.client.endpoint,
                    revision=self.revision,
                )

    def heard(self, ok: bool, problem: str = "") -> None:
        """What another request (the instance heartbeat) found out about the store."""
        if ok:
            if self.up is False:
                # Catch up now rather than wait for the watch to come back.
                if self._watch is not None:
                    watch, self._watch = self._watch, None
                    watch.cancel()
                self._schedule(0)
            else:
                self._mark_up()
        else:
            self._mark_down(problem)

    # -- writing --------------------------------------------------------------

    def write(self, balancer: str, route: str, change: dict[str, Any]) -> defer.Deferred[int]:
        """
        Record C{change} of a member in the store, if nobody changed that
        member since this proxy applied it, then apply it here.

        @return: fires with the store revision of the change; fails with
            L{StoreDown} (the store cannot be reached or is down) or
            L{Conflict} (another change came first: it is applied here too).
        """
        return defer.Deferred.fromCoroutine(self._write(balancer, route, change))

    async def _write(self, balancer: str, route: str, change: dict[str, Any]) -> int:
        store = self.client.describe()
        # Tried even when the store was last seen down: it may be back before
        # the next heartbeat says so; if not, the refusal comes within the timeouts.
        names = (balancer, route)
        known = self._key_revisions.get(names, 0)
        value = merge_change(self.changes.get(balancer, {}).get(route), change)
        encoded = json.dumps(value, sort_keys=True).encode()
        try:
            written, revision, current = await self.client.put_if(
                state_key(self.prefix, balancer, route), encoded, known
            )
        except StoreUnavailable as e:
            self._mark_down(str(e))
            raise StoreDown(
                f"the shared store {store} cannot be reached: change refused, nothing was "
                f"changed ({e})"
            ) from None
        except EtcdError as e:
            raise StoreDown(f"the shared store {store} refused the change: {e}") from None
        if not written:
            now = _decode(current) if current is not None else None
            if current is not None and now is not None:
                self._events([("PUT", current)], None)
            raise Conflict(
                f"member {route} of balancer {balancer} was changed meanwhile by another proxy "
                f"(now: {json.dumps(now, sort_keys=True) if now is not None else 'removed from the store'}); "
                "nothing was changed: check and try again"
            )
        if revision > self._key_revisions.get(names, 0):
            self._record(names, value, revision)
            self._apply({balancer: {route: value}})
        if self.up is False:
            self.heard(True)  # it is back: catch up now
        return revision

    def reapply(self) -> None:
        """Apply this copy again (after a reload rebuilt balancers from the file)."""
        if self.changes:
            self._apply(self.changes)
