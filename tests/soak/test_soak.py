"""Faults under load: nothing lost, no session mixed up, the proxy's memory and descriptors flat.

A real C{twistd -n lbproxy} process balances two real Tomcat nodes that replicate sessions
(the C{tomcat_cluster} fixture, the second seed's setup) over AJP. Client loops send GETs
through it, half of them following a session whose counter must go up by one on every answer,
while a L{FaultInjector} on a seeded random generator SIGKILLs and restarts, or SIGSTOPs and
SIGCONTs, one node at a time.

Short form (the suite): C{LB_SOAK_SECONDS} defaults to 40 seconds of load. Long form::

    LB_SOAK_SECONDS=600 python -m pytest -s tests/soak

C{LB_SOAK_SEED} repeats a run's fault schedule (the seed is printed).
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from pathlib import Path

import psutil

from tests.interop.conftest import AJP_SECRET
from tests.interop.proxy_process import free_port, running_proxy, toml_config
from tests.interop.tomcat import TomcatGroup, TomcatNode

from .faults import FaultInjector
from .load import ClientLoop, Tally, start_loops

SOAK_SECONDS = float(os.environ.get("LB_SOAK_SECONDS", "40"))
#: Client loops with a session (counter checked) and without.
SESSION_LOOPS = 4
PLAIN_LOOPS = 4
#: Load before the first measurement of the proxy (pools filled, code paths warm).
WARM_UP_SECONDS = 3.0
#: Bounds on the proxy's growth between warm-up and the end of the run.
MAX_RSS_GROWTH = 30 * 2**20
MAX_FD_GROWTH = 50
#: How the proxy logs a GET whose member broke off an answer already relayed to the client.
STARTED_ABORT = re.compile(r"GET .* failed \(app\): member closed the connection mid-response")


def _member(node: TomcatNode) -> dict[str, object]:
    # A member's answer may take as long as a pause (<= 4 s) plus a synchronous replication to
    # the paused peer (tribes' sender timeout, 5 s): 12 s lets such requests finish instead of
    # timing out. A dead node is found by its reset or refused connection, retried elsewhere.
    return {
        "url": f"{node.ajp_url}/app",
        "route": node.route,
        "secret": AJP_SECRET,
        "timeout": 12,
        "connectiontimeout": 2,
        "ping": 1,
    }


def _usage(pid: int) -> tuple[int, int]:
    """The proxy's resident memory (bytes) and open file descriptors."""
    process = psutil.Process(pid)
    return process.memory_info().rss, process.num_fds()


def test_faults_under_load(tomcat_cluster: TomcatGroup, tmp_path: Path) -> None:
    seed = int(os.environ.get("LB_SOAK_SEED", random.SystemRandom().randrange(2**32)))
    print(f"\nsoak: seed {seed}, {SOAK_SECONDS:.0f} s of load", flush=True)
    port = free_port()
    text = toml_config(
        listen=[port],
        members=[_member(node) for node in tomcat_cluster],
        balancer_options={
            "stickysession": "JSESSIONID|jsessionid",
            "health": {"kind": "cping", "interval": 1, "timeout": 1, "passes": 1, "fails": 2},
        },
    )
    with running_proxy(tmp_path / "proxy", text, [port]) as proxy:
        pid = proxy.pid
        assert pid is not None
        tally = Tally()
        stop = threading.Event()
        loops = [
            ClientLoop(f"session-{i}", port, tally, stop, session=True)
            for i in range(SESSION_LOOPS)
        ] + [ClientLoop(f"plain-{i}", port, tally, stop) for i in range(PLAIN_LOOPS)]
        threads = start_loops(loops)
        try:
            time.sleep(WARM_UP_SECONDS)
            rss_start, fds_start = _usage(pid)
            injector = FaultInjector(
                tomcat_cluster, seed, deadline=time.monotonic() + SOAK_SECONDS
            )
            injector.start().join(SOAK_SECONDS + 180)
            time.sleep(2.0)  # load on the restored cluster
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        time.sleep(1.0)
        rss_end, fds_end = _usage(pid)
        assert proxy.pid == pid, "the proxy died"
        log = proxy.log()

    # The one failure the house rules allow: a node killed after its answer had begun (the
    # proxy had relayed response bytes), so the GET cannot be replayed and the client's
    # response is aborted. The proxy logs each one; every other request must be answered.
    started_aborts = [line for line in log.splitlines() if STARTED_ABORT.search(line)]
    transport_errors = sum(v for k, v in tally.by_status.items() if k.startswith("error"))

    by_status = ", ".join(f"{k}: {v}" for k, v in sorted(tally.by_status.items()))
    kinds = {k: sum(f.kind == k for f in injector.faults) for k in ("kill", "pause")}
    summary = (
        f"soak: {tally.total} requests ({by_status}) in {SOAK_SECONDS:.0f} s, "
        f"{len(injector.faults)} faults ({kinds['kill']} kill+restart, {kinds['pause']} "
        f"SIGSTOP/SIGCONT), seed {seed}; {len(tally.failures)} failed ({len(started_aborts)} answers "
        f"already begun cut by a kill); {tally.replays} session GETs replayed after a kill; "
        f"proxy RSS {rss_start / 2**20:.1f} -> {rss_end / 2**20:.1f} MiB, "
        f"fds {fds_start} -> {fds_end}"
    )
    print(summary, flush=True)
    for fault in injector.faults:
        print(f"  {fault}")
    for failure in tally.failures[:20]:
        print(f"  failed: {failure}")
    for line in started_aborts[:20]:
        print(f"  proxy: {line}")

    assert injector.error is None, repr(injector.error)
    assert not any(t.is_alive() for t in threads), "a client loop hung"
    assert injector.faults, "no fault was injected"
    assert tally.total > 10 * len(loops), summary
    # No status but 200 (no 502/503/504), and no transport error the proxy cannot account for.
    assert set(tally.by_status) <= {"200"} | {k for k in tally.by_status if k.startswith("error")}
    assert transport_errors == len(tally.failures), tally.failures[:20]
    assert len(tally.failures) <= len(started_aborts), (tally.failures[:20], started_aborts)
    assert len(started_aborts) <= kinds["kill"] * len(loops), started_aborts
    assert not tally.session_faults, tally.session_faults[:20]
    # A replay (+2) happens only for a GET in flight on a node at the instant it was killed.
    assert tally.replays <= kinds["kill"] * SESSION_LOOPS, summary
    assert rss_end - rss_start < MAX_RSS_GROWTH, summary
    assert fds_end - fds_start < MAX_FD_GROWTH, summary
