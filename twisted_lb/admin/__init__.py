"""
Operating a running proxy: the balancer manager (an HTML page and a JSON API
on a separate admin listener), Prometheus metrics, and the state file that
keeps manager changes across restarts.

The package's modules, one job each: L{actions} (what can be done to a
member), L{manager} (doing it: log, record), L{state} (the state file),
L{view} (what is shown), L{page} (the HTML), L{site} (the resources),
L{csrf} (cross-site checks), L{auth} and L{passwords} (HTTP Basic
authentication), L{pinned} (sessions left on draining members), L{metrics}
and L{service} (the listener).
"""

from __future__ import annotations

from .actions import ActionError
from .passwords import hash_password, verify_password
from .service import AdminService, WorkerAdmin
from .state import apply_state

__all__ = ["ActionError", "AdminService", "apply_state", "hash_password", "verify_password", "WorkerAdmin"]
