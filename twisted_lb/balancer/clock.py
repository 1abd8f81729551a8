"""
The clock the balancer is given: it never reads the time any other way.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["SupportsSeconds"]


class SupportsSeconds(Protocol):
    """
    A clock: C{twisted.internet.task.Clock} in tests, the reactor (C{IReactorTime}) in service.
    """

    def seconds(self) -> float:
        """
        @return: the current time in seconds.
        """
