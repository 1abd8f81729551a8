"""
Keeping manager changes across restarts: the state file.

The file holds, per balancer and member route, what the manager changed
(status, load factor), the members it added (with their URL) and the ones it
removed::

    {"version": 1,
     "balancers": {"app": {"node1": {"status": "draining"},
                           "node3": {"url": "ajp://10.0.0.3:8009", "loadfactor": 2.0},
                           "node2": {"removed": true}}}}

It is rewritten atomically (a temporary file in the same directory, flushed
to disk, then renamed over the old one) after every change, and re-applied
at start-up by L{apply_state}, which another process serving the same
configuration may call too.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from twisted_lb.config.model import ConfigError
from twisted_lb.control import ProxyControl

from .actions import ActionError, add_member, member_action

if TYPE_CHECKING:
    from twisted_lb.builders import BuiltBalancer

__all__ = ["StateFile", "apply_state", "follow_state", "read_state"]

_log = Logger()
_VERSION = 1


def read_state(path: str) -> dict[str, dict[str, dict[str, Any]]]:
    """
    The changes recorded in C{path}, by balancer and route; none when the
    file does not exist.

    @raise ConfigError: the file cannot be read or is not a state file.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ConfigError(path, "admin.state_file", f"cannot be read: {e}") from None
    if not isinstance(data, dict):
        data = {}
    balancers = data.get("balancers")
    if data.get("version") != _VERSION or not isinstance(balancers, dict) or not all(
        isinstance(members, dict) and all(isinstance(c, dict) for c in members.values())
        for members in balancers.values()
    ):
        raise ConfigError(path, "admin.state_file", "is not a twisted_lb manager state file")
    return balancers


def write_atomically(path: str, text: str) -> None:
    """Replace C{path} with C{text} so that a crash leaves the old or the new file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".state-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class StateFile:
    """
    The manager's changes, kept in memory and, with a C{path}, on disk.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.changes: dict[str, dict[str, dict[str, Any]]] = read_state(path) if path else {}

    def record(self, balancer: str, route: str, change: dict[str, Any]) -> None:
        """
        Record a change of the member with C{route} (see L{member_action}'s
        return value, or C{{"url": ..., "loadfactor": ...}} for an added
        member) and save.
        """
        members = self.changes.setdefault(balancer, {})
        if change.get("removed") or "url" in change:
            members[route] = dict(change)
        else:
            members.setdefault(route, {}).update(change)
        self.save()

    def save(self) -> None:
        """Write the file (atomically), when there is one."""
        if self.path is None:
            return
        text = json.dumps({"version": _VERSION, "balancers": self.changes}, indent=2, sort_keys=True)
        write_atomically(self.path, text + "\n")


def _apply_member(built: BuiltBalancer, route: str, change: dict[str, Any]) -> str:
    present = built.balancer.member_by_route(route) is not None
    if change.get("removed"):
        if not present:
            return "already absent"
        member_action(built, route, "remove")
        return "removed"
    done = []
    if "url" in change and not present:
        add_member(built, change["url"], route, change.get("loadfactor", 1.0))
        done.append(f"added {change['url']}")
    elif not present:
        return "no such member (skipped)"
    if "loadfactor" in change:
        member_action(built, route, "loadfactor", change["loadfactor"])
        done.append(f"loadfactor {change['loadfactor']}")
    if "status" in change:
        actions = {"active": "enable", "draining": "drain", "disabled": "disable",
                   "standby": "standby"}
        if change["status"] not in actions:
            raise ActionError(400, f"unknown status {change['status']!r}")
        member_action(built, route, actions[change["status"]])
        done.append(change["status"])
    return ", ".join(done) or "nothing to do"


def apply_changes(
    balancers: dict[str, BuiltBalancer], changes: dict[str, dict[str, dict[str, Any]]], source: str
) -> list[str]:
    """
    Apply recorded changes to running balancers; log and return one line per
    member. Changes for balancers or members that no longer exist are skipped
    (and said so), never fatal.
    """
    lines = []
    for name, members in changes.items():
        built = balancers.get(name)
        for route, change in members.items():
            if built is None:
                outcome = "no such balancer (skipped)"
            else:
                try:
                    outcome = _apply_member(built, route, change)
                except ActionError as e:
                    outcome = f"not applied: {e}"
            line = f"{source}: balancer {name} member {route}: {outcome}"
            _log.info("manager state: {line}", line=line)
            lines.append(line)
    return lines


def apply_state(service: ProxyControl, path: str) -> list[str]:
    """
    Re-read the state file at C{path} and apply it to C{service}'s balancers
    (its C{balancers}), so that changes made in one process reach another.

    @return: one line per member saying what was done.
    @raise ConfigError: the file cannot be read or is not a state file.
    """
    return apply_changes(service.balancers, read_state(path), path)


def follow_state(service: ProxyControl, path: str, occasion: str) -> None:
    """
    L{apply_state} in a process that follows worker 0's manager, logging
    what was applied, or why nothing was (the process goes on either way).

    @param occasion: what made it re-read the file, for the log (C{SIGUSR1}).
    """
    try:
        done = apply_state(service, path)
    except ConfigError as e:
        _log.error("{occasion}: state file not applied: {error}", occasion=occasion, error=str(e))
        return
    _log.info("{occasion}: applied {path} ({n} entries)", occasion=occasion, path=path, n=len(done))
