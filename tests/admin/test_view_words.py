"""The manager's words for a member's state and its last check (L{twisted_lb.admin.view})."""

from __future__ import annotations

from typing import Any

import pytest

from twisted_lb.admin.view import last_check, member_state


def _member(**changes: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "name": "ajp://10.0.0.1:8009", "status": "active", "in_error": False, "checked": True,
        "loadfactor": 4.0, "weight": 4.0, "ramp_since": None,
        "check": {"ok": True, "at": 97.0, "detail": "CPONG", "duration": 0.002, "passes": 5,
                  "fails": 0, "running": False, "next_at": 104.0},
    }  # fmt: skip
    check = changes.pop("check", {})
    m.update(changes)
    m["check"] = {**m["check"], **check}
    return m


@pytest.mark.parametrize(
    "changes, trial, expected",
    [
        ({}, None, ("active", "active")),
        ({"in_error": True, "check": {"passes": 0}}, None, ("error", "in error")),
        (
            {"status": "draining", "in_error": True, "check": {"passes": 0}},
            None,
            ("error", "in error"),
        ),
        (
            {"in_error": True, "check": {"running": True, "passes": 0}},
            None,
            ("probing", "in error, probing"),
        ),
        ({"in_error": True, "check": {"passes": 1}}, None, ("probing", "in error, probing")),
        (
            {"in_error": True, "check": {"passes": 0}},
            "ajp://10.0.0.1:8009",
            ("probing", "in error, probing"),
        ),
        ({"status": "disabled", "in_error": True}, None, ("disabled", "disabled")),
        ({"status": "draining"}, None, ("draining", "draining")),
        ({"status": "standby"}, None, ("standby", "hot standby")),
        (
            {"ramp_since": 90.0, "weight": 1.0},
            None,
            ("slowstart", "slow start (25% of its weight)"),
        ),
    ],
)
def test_member_state(
    changes: dict[str, Any], trial: str | None, expected: tuple[str, str]
) -> None:
    assert member_state(_member(**changes), trial) == expected


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({}, "CPONG in 2 ms, 3 s ago, next check in 4 s"),
        (
            {"in_error": True, "check": {"ok": False, "detail": "connection refused", "duration": None,
                                         "fails": 9, "at": 60.0}},
            "connection refused, 9 fails, 40 s ago, next probe in 4 s",
        ),
        ({"check": {"ok": False, "detail": "HTTP 500", "fails": 1, "duration": 0.0123}},
         "HTTP 500 in 12 ms, 1 fail, 3 s ago, next check in 4 s"),
        ({"check": {"at": None, "next_at": None}}, "not checked yet"),
        ({"checked": False, "check": {"at": None, "next_at": None}}, "no health check"),
        ({"check": {"running": True}}, "CPONG in 2 ms, 3 s ago, a check is under way"),
        ({"check": {"at": -400.0}}, "CPONG in 2 ms, 8 min ago, next check in 4 s"),
    ],
)  # fmt: skip
def test_last_check_in_words(changes: dict[str, Any], expected: str) -> None:
    assert last_check(_member(**changes), now=100.0) == expected
