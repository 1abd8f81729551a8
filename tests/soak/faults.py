"""A fault injector for the soak test, driven by a seeded random generator.

One thread, one fault at a time: a node is SIGKILLed and started again (then replication is
awaited), or SIGSTOPped for a few seconds and SIGCONTed. A fault ends with its node back in
service before the next one begins, so at least one node is always usable.
"""

from __future__ import annotations

import random
import threading
import time

import attrs

from tests.interop.tomcat import TomcatGroup, wait_for_replication


@attrs.frozen
class FaultRecord:
    """One fault: when it began (seconds since the injector started), what, and how long the
    node was out."""

    at: float
    kind: str
    node: str
    seconds: float

    def __str__(self) -> str:
        return f"t={self.at:7.2f}s {self.kind:5} {self.node} for {self.seconds:.2f}s"


@attrs.define(eq=False)
class FaultInjector:
    """Kill, pause and restart the nodes of C{group} at random until C{deadline}.

    @ivar seed: the seed of the random generator (logged, so that a run can be repeated).
    @ivar gap: the range of seconds between two faults.
    @ivar pause: the range of seconds a node stays SIGSTOPped.
    """

    group: TomcatGroup
    seed: int
    deadline: float
    gap: tuple[float, float] = (2.0, 5.0)
    pause: tuple[float, float] = (1.0, 4.0)
    faults: list[FaultRecord] = attrs.field(factory=list)
    error: BaseException | None = None
    _started: float = attrs.field(factory=time.monotonic)

    def run(self) -> None:
        rng = random.Random(self.seed)
        # The first two faults are one of each kind, so that even a short run has both.
        first = rng.sample(("kill", "pause"), 2)
        try:
            while True:
                wait = rng.uniform(*self.gap)
                if time.monotonic() + wait >= self.deadline:
                    break
                time.sleep(wait)
                node = rng.choice(self.group.nodes)
                kind = first.pop(0) if first else rng.choice(("kill", "pause"))
                t0 = time.monotonic()
                if kind == "kill":
                    node.kill()
                    node.start()
                    wait_for_replication(self.group.nodes)
                else:
                    seconds = rng.uniform(*self.pause)
                    node.pause()
                    time.sleep(seconds)
                    node.resume()
                record = FaultRecord(t0 - self._started, kind, node.name, time.monotonic() - t0)
                self.faults.append(record)
                print(f"soak fault: {record}", flush=True)
        except BaseException as e:  # reported by the test
            self.error = e

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="fault-injector", daemon=True)
        thread.start()
        return thread


__all__ = ["FaultInjector", "FaultRecord"]
