"""
A flash crowd on real sockets: 2 000 clients connect to a proxy listener at
the same instant (tests/robustness/flash_crowd.py, in a network namespace of
its own so that the kernel's listen-queue counters are this run's alone).

With Twisted's default backlog of 50 the listen queue overflows and each
dropped SYN costs its client a second before the retry; with the kernel's
somaxconn, the listeners' default now, none overflows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HELPER = Path(__file__).with_name("flash_crowd.py")
CLIENTS = 2000


def _crowd(*extra: str, clients: int = CLIENTS) -> dict[str, float]:
    try:
        done = subprocess.run(
            ["unshare", "-n", sys.executable, str(HELPER), "--clients", str(clients), *extra],
            capture_output=True,
            text=True,
            timeout=90,
        )
    except FileNotFoundError:
        pytest.skip("unshare is not installed")
    if done.returncode and "unshare" in done.stderr and "Operation not permitted" in done.stderr:
        pytest.skip("cannot create a network namespace here (needs root)")
    assert done.returncode == 0, done.stderr
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    print(result)
    return result


def test_flash_crowd_is_served_without_listen_queue_overflow() -> None:
    """
    2 000 connects at once while the proxy is stopped for 0.5 s (so that the
    kernel's queue alone holds them, however fast this machine accepts):
    every one served, none dropped by the kernel (no SYN retried).
    """
    result = _crowd("--pause", "0.5")
    assert result["ok"] == CLIENTS
    assert result["ListenOverflows"] == 0
    assert result["ListenDrops"] == 0
    # Bounded, with room for a loaded test machine (the figure is in docs/security.md).
    assert result["max_answer"] < 25.0


def test_flash_crowd_overflows_a_backlog_of_50() -> None:
    """
    The control: backlog=50 (Twisted's default) overflows with a crowd of
    500 while the proxy is stopped for 0.3 s. (Without the pause a quiet
    machine may accept fast enough that nothing overflows: the test would
    say nothing about the queue.)
    """
    result = _crowd("--pause", "0.3", "--endpoint-extra", "backlog=50", clients=500)
    assert result["ok"] == 500
    assert result["ListenOverflows"] > 0
    # A dropped SYN is sent again after 1 s.
    assert result["max_connect"] >= 1.0
