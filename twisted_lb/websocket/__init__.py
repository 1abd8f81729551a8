"""
WebSocket members: the bridge that carries a client's WebSocket to a
C{ws://} or C{wss://} member of a balancer, and the member backend.

AJP cannot carry an upgrade, so a Tomcat node is reached by AJP for its
pages and by C{ws(s)://} for its WebSockets; both balancers share the node's
route, so that a session and its WebSocket land on the same node.
"""

from __future__ import annotations

from .bridge import DEFAULT_MAX_MESSAGE_SIZE, Tunnel, WebSocketBridge
from .member import UpgradeRefused, WSMember

__all__ = ["WebSocketBridge", "WSMember", "Tunnel", "UpgradeRefused", "DEFAULT_MAX_MESSAGE_SIZE"]
