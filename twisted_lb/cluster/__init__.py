"""
Several proxies, one runtime state: the manager's changes shared through
etcd (see docs/deployment-ha.md).

The package's modules, one job each: L{etcd} (an etcd v3 client on its
HTTP/JSON gateway), L{shared} (the member states written with a revision
check and followed from the watch stream), L{instances} (each proxy's
registration under a lease, and the list of the group's proxies) and
L{service} (all of it as a Twisted service of one proxy).
"""

from __future__ import annotations

from .etcd import EtcdClient, StoreUnavailable
from .service import ClusterCollector, ClusterService
from .shared import Conflict, SharedState, StoreDown

__all__ = [
    "ClusterCollector",
    "ClusterService",
    "Conflict",
    "EtcdClient",
    "SharedState",
    "StoreDown",
    "StoreUnavailable",
]
