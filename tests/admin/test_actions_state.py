"""
Manager actions on real balancers (memory reactor) and the state file:
recording, atomic rewriting and re-applying, also in another process's
balancers via apply_state.
"""

from __future__ import annotations

import json
import os

import pytest
from twisted.internet.testing import MemoryReactorClock

from twisted_lb.admin import ActionError, apply_state
from twisted_lb.admin.manager import Manager
from twisted_lb.admin.metrics import RequestMetrics
from twisted_lb.admin.state import StateFile
from twisted_lb.balancer import MemberStatus
from twisted_lb.config import read_config
from twisted_lb.config.model import ConfigError
from twisted_lb.service import ProxyService

from .helpers import FakeProxy


def manager(proxy: FakeProxy, path: str | None = None) -> Manager:
    return Manager(proxy.balancers, StateFile(path), RequestMetrics(proxy.balancers))


@pytest.mark.parametrize(
    "action, status",
    [
        ("drain", MemberStatus.DRAINING),
        ("disable", MemberStatus.DISABLED),
        ("standby", MemberStatus.STANDBY),
        ("enable", MemberStatus.ACTIVE),
    ],
)
def test_status_actions(action: str, status: MemberStatus) -> None:
    """Each status action sets the member's status through the balancer."""
    proxy = FakeProxy()
    if action == "enable":
        proxy.balancers["app"].balancer.set_status(proxy.member("node1"), MemberStatus.DISABLED)
    change = manager(proxy).act("app", "node1", action, who="t")
    assert proxy.member("node1").status is status
    assert proxy.member("node2").status is MemberStatus.ACTIVE
    assert change == {"status": status.value}


def test_disabled_member_gets_no_new_pick() -> None:
    """After 'disable', the balancer only picks the other member."""
    proxy = FakeProxy()
    manager(proxy).act("app", "node1", "disable", who="t")
    balancer = proxy.balancers["app"].balancer
    assert {balancer.pick().member.route for _ in range(6)} == {"node2"}


def test_loadfactor_and_errors() -> None:
    """Load factors are checked; unknown balancers, members and actions are named errors."""
    proxy = FakeProxy()
    m = manager(proxy)
    assert m.act("app", "node2", "loadfactor", "2.5", who="t") == {"loadfactor": 2.5}
    assert proxy.member("node2").loadfactor == 2.5
    for args, status, text in [
        (("app", "node2", "loadfactor", "0"), 400, "from 1 to 100"),
        (("app", "node2", "loadfactor", "x"), 400, "must be a number"),
        (("app", "nodeX", "drain"), 404, "no member with route 'nodeX'"),
        (("nope", "node1", "drain"), 404, "no balancer 'nope'"),
        (("app", "node1", "explode"), 400, "unknown action"),
    ]:
        with pytest.raises(ActionError) as e:
            m.act(*args, who="t")
        assert e.value.status == status and text in str(e.value)


def test_add_and_remove() -> None:
    """Added members are used at once; the last member cannot be removed."""
    proxy = FakeProxy()
    m = manager(proxy)
    added = m.add("app", "ajp://127.0.0.1:9100", "node3", "3", who="t")
    assert added == {"url": "ajp://127.0.0.1:9100", "loadfactor": 3.0, "route": "node3"}
    assert proxy.member("node3").loadfactor == 3.0
    with pytest.raises(ActionError) as e:
        m.add("app", "ajp://127.0.0.1:9101", "node3", who="t")
    assert e.value.status == 409
    with pytest.raises(ActionError) as e:
        m.add("app", "ftp://127.0.0.1", "node4", who="t")
    assert e.value.status == 400 and "scheme" in str(e.value)
    m.act("app", "node1", "remove", who="t")
    m.act("app", "node2", "remove", who="t")
    assert [x.route for x in proxy.balancers["app"].balancer.members] == ["node3"]
    with pytest.raises(ActionError) as e:
        m.act("app", "node3", "remove", who="t")
    assert e.value.status == 409 and "disable it instead" in str(e.value)


#: The same proxy as a native and as an Apache file, with a top-level timeout
#: of {timeout} seconds and the members {members} (URL, route, load factor).
_TIMEOUT_FILES = {
    "lb.toml": (
        'timeout = {timeout}\n[[listen]]\nendpoint = "tcp:0:interface=127.0.0.1"\n'
        "[balancers.app]\nmembers = [{members}]\n",
        '{{ url = "{}", route = "{}", loadfactor = {} }}',
        ", ",
    ),
    "httpd.conf": (
        "Listen 127.0.0.1:8080\nProxyTimeout {timeout}\n<Proxy balancer://app>\n{members}"
        "</Proxy>\nProxyPass / balancer://app/\n",
        "BalancerMember {} route={} loadfactor={}\n",
        "",
    ),
}


@pytest.mark.parametrize("name", sorted(_TIMEOUT_FILES))
def test_added_member_gets_what_a_file_member_gets(tmp_path, name: str) -> None:
    """
    A member added in the manager is configured as a member of the file
    with only its URL, route and load factor: it waits the top-level timeout
    (also after a reload changed it), not MemberConfig's default.
    """
    text, line, sep = _TIMEOUT_FILES[name]
    path = tmp_path / name

    def write(timeout: int, *members: tuple[str, str, int]) -> None:
        path.write_text(text.format(timeout=timeout, members=sep.join(line.format(*m) for m in members)))

    first, added = ("ajp://127.0.0.1:9001", "node1", 1), ("ajp://127.0.0.1:9002", "node2", 2)
    write(42, first)
    proxy = ProxyService(read_config(str(path))[0], MemoryReactorClock())
    m = Manager(proxy.balancers, StateFile(None))
    built = proxy.balancers["app"]
    m.add("app", added[0], added[1], added[2], who="t")
    mconf = built.member_configs[built.balancer.member_by_route("node2")]
    write(42, first, added)
    assert mconf.timeout == 42.0
    assert mconf == read_config(str(path))[0].balancers[0].members[1]

    write(7, first)
    proxy.reload()
    assert proxy.balancers["app"] is built
    m.add("app", "ajp://127.0.0.1:9003", "node3", who="t")
    assert built.member_configs[built.balancer.member_by_route("node3")].timeout == 7.0


def test_state_file_written_atomically_and_reapplied(tmp_path) -> None:
    """Every change rewrites the file; a fresh proxy gets the same state from it."""
    path = str(tmp_path / "state.json")
    first = FakeProxy(("node1", "node2", "node9"))
    m = manager(first, path)
    m.act("app", "node1", "drain", who="t")
    m.act("app", "node2", "loadfactor", 4, who="t")
    m.add("app", "ajp://127.0.0.1:9100", "node3", who="t")
    m.act("app", "node3", "standby", who="t")
    m.act("app", "node9", "remove", who="t")
    data = json.loads(open(path).read())
    assert data["version"] == 1
    assert data["balancers"]["app"] == {
        "node1": {"status": "draining"},
        "node2": {"loadfactor": 4.0},
        "node3": {"url": "ajp://127.0.0.1:9100", "loadfactor": 1.0, "status": "standby"},
        "node9": {"removed": True},
    }
    assert [n for n in os.listdir(tmp_path) if n.startswith(".state-")] == []

    second = FakeProxy(("node1", "node2", "node9"))
    lines = apply_state(second, path)
    assert len(lines) == 4 and all(path in line for line in lines)
    assert second.member("node1").status is MemberStatus.DRAINING
    assert second.member("node2").loadfactor == 4.0
    assert second.member("node3").status is MemberStatus.STANDBY
    assert second.balancers["app"].member_configs[second.member("node3")].url == (
        "ajp://127.0.0.1:9100"
    )
    assert second.member("node9") is None
    # Applying twice changes nothing more.
    apply_state(second, path)
    assert [x.route for x in second.balancers["app"].balancer.members] == ["node1", "node2", "node3"]


def test_state_for_unknown_things_is_skipped(tmp_path) -> None:
    """Changes for balancers or members that are gone are reported and skipped."""
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": 1, "balancers": {
        "gone": {"x": {"status": "disabled"}},
        "app": {"nodeX": {"status": "disabled"}, "node1": {"status": "bogus"}},
    }}))
    proxy = FakeProxy()
    lines = apply_state(proxy, str(path))
    assert any("no such balancer (skipped)" in line for line in lines)
    assert any("nodeX: no such member (skipped)" in line for line in lines)
    assert any("unknown status 'bogus'" in line for line in lines)
    assert proxy.member("node1").status is MemberStatus.ACTIVE


@pytest.mark.parametrize("text", ["not json", "[]", '{"version": 2, "balancers": {}}',
                                  '{"version": 1, "balancers": {"app": []}}'])
def test_broken_state_file_is_a_config_error(tmp_path, text: str) -> None:
    """A state file that is not one stops start-up with the file and key named."""
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        StateFile(str(path))
    assert e.value.key == "admin.state_file" and e.value.source == str(path)


def test_missing_state_file_is_empty(tmp_path) -> None:
    assert StateFile(str(tmp_path / "none.json")).changes == {}


def test_admin_password_command(capsys, monkeypatch) -> None:
    """python -m twisted_lb admin-password prints a hash that verifies the password."""
    import io

    from twisted_lb.__main__ import main
    from twisted_lb.admin import verify_password

    monkeypatch.setattr("sys.stdin", io.StringIO("letmein\n"))
    assert main(["admin-password", "--stdin"]) == 0
    stored = capsys.readouterr().out.strip()
    assert verify_password("letmein", stored) and not verify_password("letmeout", stored)
