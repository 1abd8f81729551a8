"""
What the control side (the admin listener, the shared store of a
C{[cluster]}) may ask of a running proxy: L{ProxyControl}, the one narrow
interface through which they reach it, and L{WorkerIdentity}, which worker
process the proxy runs in.

L{twisted_lb.service.ProxyService} implements L{ProxyControl}; the admin
and cluster packages depend on this module, never on the service, so that
the service can build them without an import cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs
from twisted.application.service import IService

from twisted_lb.builders import BuiltBalancer
from twisted_lb.config.model import ProxyConfig

__all__ = ["ChangeSummary", "ProxyControl", "WorkerIdentity"]


class ChangeSummary(Protocol):
    """What a reload changed."""

    def describe(self) -> str:
        """One line saying what changed (or C{"nothing changed"})."""


class ProxyControl(Protocol):
    """
    A running proxy, as the control side sees it: it reads the
    configuration, the balancers (to show them, and to change a member's
    state in place), whether it runs and listens (C{/healthz}), when it
    started and last reloaded, and it asks for a reload.
    """

    @property
    def config(self) -> ProxyConfig:
        """The configuration in use (its C{source} names the file)."""

    @property
    def balancers(self) -> dict[str, BuiltBalancer]:
        """
        The balancers in use, by name: the same dictionary for the proxy's
        whole life (a reload changes it in place), so that a holder sees
        the balancers of each new configuration.
        """

    @property
    def listening(self) -> Sequence[IService]:
        """One listening service per listener, in configuration order."""

    @property
    def running(self) -> int:
        """Whether it is started (a true value) or not."""

    @property
    def started_at(self) -> float | None:
        """When it started (the reactor's clock), or C{None}."""

    @property
    def last_reload(self) -> tuple[float, str] | None:
        """The last reload: when, and what it changed (or why it was refused)."""

    def reload(self, config: ProxyConfig | None = None) -> ChangeSummary:
        """
        Apply a new configuration (the file read again when C{None}).

        @raise twisted_lb.config.model.ConfigError: it is not valid or
            cannot be applied; nothing was changed.
        """


@attrs.frozen
class WorkerIdentity:
    """
    Which worker process a proxy runs in (with C{workers} > 1), given by the
    worker's entry point to the service it builds.

    @ivar index: 0 … C{count} - 1; stays the same when the worker is restarted.
    @ivar count: how many workers the supervisor runs.
    @ivar pid: this process's PID.
    @ivar supervisor_pid: the supervisor's (C{twistd}'s) PID.
    """

    index: int
    count: int
    pid: int
    supervisor_pid: int
