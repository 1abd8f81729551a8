"""
Autobahn starts its timers (close handshake timeouts) through txaio's loop,
the global reactor unless told otherwise: each in-memory test gets its own
clock there, so that no timer outlives the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import txaio
from twisted.internet.testing import MemoryReactorClock


@pytest.fixture(autouse=True)
def txaio_clock() -> Iterator[MemoryReactorClock]:
    before = txaio.config.loop
    clock = MemoryReactorClock()
    txaio.config.loop = clock
    try:
        yield clock
    finally:
        txaio.config.loop = before
