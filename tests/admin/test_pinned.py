"""
The approximate distinct counter behind "sessions pinned per member": its
accuracy on known inputs, its fixed memory, and its window on an injected clock.
"""

from __future__ import annotations

import pytest

from twisted_lb.admin.pinned import RELATIVE_ERROR, DistinctCounter


def ids(count: int, start: int = 0) -> list[bytes]:
    return [b"%032X.node1" % i for i in range(start, start + count)]


@pytest.mark.parametrize("count", [0, 1, 2, 17, 100])
def test_small_counts_nearly_exact(count: int) -> None:
    """A few sessions, each seen many times, are counted once each (to within one)."""
    counter = DistinctCounter()
    for _ in range(3):
        for key in ids(count):
            counter.add(key, 10.0)
    assert abs(counter.count(20.0) - count) <= 1


@pytest.mark.parametrize("count", [300, 1_000, 10_000, 100_000])
def test_large_counts_within_a_few_percent(count: int) -> None:
    """Hundreds to thousands of distinct ids are estimated within 3 standard errors (about 7 %)."""
    counter = DistinctCounter()
    for key in ids(count):
        counter.add(key, 10.0)
    for key in ids(count // 2):  # seen again: not counted twice
        counter.add(key, 11.0)
    estimate = counter.count(12.0)
    assert abs(estimate - count) <= 3 * RELATIVE_ERROR * count, estimate
    assert RELATIVE_ERROR < 0.025


def test_memory_is_fixed_whatever_the_traffic() -> None:
    """A hundred thousand distinct ids over half an hour use the same sketches as one."""
    counter = DistinctCounter()
    sketches = [id(s) for s in counter._sketches]
    sizes = [len(s) for s in counter._sketches]
    for i, key in enumerate(ids(100_000)):
        counter.add(key, i * 0.018)
    assert [id(s) for s in counter._sketches] == sketches
    assert [len(s) for s in counter._sketches] == sizes == [counter.registers] * 11


def test_window_expires_on_the_clock() -> None:
    """A session is counted for 10 minutes at least and 11 at most, then forgotten."""
    counter = DistinctCounter(window=600.0, bucket=60.0)
    for key in ids(5):
        counter.add(key, 1000.0)  # in the bucket 960..1020
    for key in ids(3, start=5):
        counter.add(key, 1300.0)
    assert counter.count(1000.0) == 5
    assert counter.count(1300.0) == 8
    assert counter.count(1000.0 + 600) == 8  # still within 10 minutes
    assert counter.count(960.0 + 660 - 0.5) == 8  # up to the end of its bucket's 11th minute
    assert counter.count(960.0 + 660) == 3  # then gone
    assert counter.count(1260.0 + 660) == 0
    # A bucket's sketch is reused when its turn comes round: old ids do not come back.
    counter.add(b"new", 1260.0 + 660 + 5)
    assert counter.count(1260.0 + 660 + 6) == 1


def test_precision_is_checked() -> None:
    with pytest.raises(ValueError, match="precision must be between 4 and 16"):
        DistinctCounter(precision=20)
