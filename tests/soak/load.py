"""Steady load for the soak test: client loops in threads, every request counted.

Each L{ClientLoop} keeps one keep-alive connection to the proxy (L{ProxyClient}) and sends
idempotent GETs until told to stop. A loop with a session follows its C{JSESSIONID} and checks
that the session's counter goes up on every answer.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter

import attrs

from tests.interop.proxy_process import ProxyClient

#: The session counter servlet of the test webapp (JSON: node, session, counter).
SESSION_PATH = "/app/session"
#: A sessionless page (JSON echo of the request, naming the node).
PLAIN_PATH = "/app/echo?soak=1"


@attrs.define
class Tally:
    """Every request of every loop, counted under one lock.

    @ivar by_status: answers by HTTP status; transport errors by C{"error: <type>"}.
    @ivar failures: a description (time, loop, what) of every request that did not get a 200.
    @ivar session_faults: every answer of a session loop that broke the counter's sequence.
    @ivar replays: session answers whose counter went up by 2: the proxy replayed a GET that
        a killed node had served (and replicated) but not answered.
    """

    started: float = attrs.field(factory=time.monotonic)
    by_status: Counter[str] = attrs.field(factory=Counter)
    failures: list[str] = attrs.field(factory=list)
    session_faults: list[str] = attrs.field(factory=list)
    replays: int = 0
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    def record(self, loop: str, outcome: str, detail: str = "") -> None:
        with self._lock:
            self.by_status[outcome] += 1
            if outcome != "200":
                at = time.monotonic() - self.started
                self.failures.append(f"t={at:.2f}s {loop}: {outcome} {detail}".rstrip())

    def session_fault(self, loop: str, message: str) -> None:
        with self._lock:
            at = time.monotonic() - self.started
            self.session_faults.append(f"t={at:.2f}s {loop}: {message}")

    def replay(self) -> None:
        with self._lock:
            self.replays += 1


@attrs.define(eq=False)
class ClientLoop:
    """One client sending GETs through the proxy until L{stop} is set.

    @ivar session: follow a session (C{/app/session}) and check its counter; otherwise GET a
        sessionless page.
    """

    name: str
    port: int
    tally: Tally
    stop: threading.Event
    session: bool = False
    timeout: float = 30.0
    _last_counter: int | None = attrs.field(default=None, init=False)
    _session_base: str | None = attrs.field(default=None, init=False)

    def run(self) -> None:
        client = ProxyClient(self.port, timeout=self.timeout, adopt_cookies=self.session)
        path = SESSION_PATH if self.session else PLAIN_PATH
        try:
            while not self.stop.is_set():
                try:
                    result = client.get(path)
                except (OSError, http.client.HTTPException) as e:
                    self.tally.record(self.name, f"error: {type(e).__name__}", str(e))
                    continue
                self.tally.record(self.name, str(result.status), repr(result.body[:200]))
                if result.status == 200 and self.session:
                    self._check_session(result.json(), client.cookies.get("JSESSIONID"))
        finally:
            client.close()

    def _check_session(self, doc: dict[str, object], cookie: str | None) -> None:
        counter = doc.get("counter")
        session = str(doc.get("session"))
        base = session.rpartition(".")[0]
        if not isinstance(counter, int):
            self.tally.session_fault(self.name, f"no counter in {doc!r}")
            return
        if self._session_base is None:
            self._session_base = base
        elif base != self._session_base:
            self.tally.session_fault(
                self.name, f"answered by session {session}, not {self._session_base}.*"
            )
        if cookie is not None and cookie.rpartition(".")[0] != self._session_base:
            self.tally.session_fault(self.name, f"cookie changed session: {cookie}")
        if self._last_counter is not None:
            step = counter - self._last_counter
            if step == 2:
                self.tally.replay()
            elif step != 1:
                self.tally.session_fault(
                    self.name,
                    f"counter {self._last_counter} -> {counter} (node {doc.get('node')})",
                )
        self._last_counter = counter


def start_loops(loops: list[ClientLoop]) -> list[threading.Thread]:
    """Start one daemon thread per loop."""
    threads = [threading.Thread(target=loop.run, name=loop.name, daemon=True) for loop in loops]
    for thread in threads:
        thread.start()
    return threads


__all__ = ["ClientLoop", "PLAIN_PATH", "SESSION_PATH", "Tally", "start_loops"]
