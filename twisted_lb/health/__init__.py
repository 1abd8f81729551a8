"""
Health of the members, from the I/O side: active checks of every member that has them
(L{HealthChecker}: CPING, HTTP, TCP) and probes of members in error that have none
(L{Prober}).  The balancer decides what results mean; these services only run the checks and
report.
"""

from __future__ import annotations

from .checker import HealthChecker
from .checks import CheckResult, build_check
from .prober import Prober

__all__ = ["CheckResult", "HealthChecker", "Prober", "build_check"]
