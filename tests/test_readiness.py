"""L{twisted_lb.readiness.notify}: systemd's notification datagrams."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from twisted_lb.readiness import notify


def test_no_socket_no_notification() -> None:
    assert notify("READY=1", {}) is False


def test_path_socket(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify"))
        assert notify("READY=1\nSTATUS=serving", {"NOTIFY_SOCKET": str(tmp_path / "notify")})
        assert sock.recv(100) == b"READY=1\nSTATUS=serving"


def test_abstract_socket() -> None:
    """'@name' is Linux's abstract namespace, as systemd passes it."""
    name = f"twisted_lb-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert notify("STOPPING=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"STOPPING=1"


def test_unreachable_socket_is_logged_not_raised(tmp_path: Path) -> None:
    assert notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody")}) is False
