"""
Client factories that log nothing per connection.

Twisted's L{Factory} logs "Starting factory …" and "Stopping factory …" each
time a connection starts and ends; a proxy that probes its members every
second would fill its log with them. The factories of probes, health checks
and member connections are made from L{QuietFactory} instead.
"""

from __future__ import annotations

from twisted.internet.protocol import Factory

__all__ = ["QuietFactory"]


class QuietFactory(Factory):
    """A L{Factory} without the start and stop log lines."""

    noisy = False
