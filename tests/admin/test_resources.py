"""
The admin resources through a real Site over a StringTransport: the page,
form actions with the cross-site checks, the JSON API, and the metrics
(parsed back with prometheus_client's parser).
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from twisted.web.test.requesthelper import DummyRequest

from twisted_lb.admin.csrf import CrossSiteGuard
from twisted_lb.admin.manager import Manager
from twisted_lb.admin.metrics import MemberCounters, RequestMetrics
from twisted_lb.admin.passwords import hash_password, verify_password
from twisted_lb.admin.pinned import PinnedSessions
from twisted_lb.admin.site import AdminRoot
from twisted_lb.admin.state import StateFile
from twisted_lb.balancer import MemberStatus

from .helpers import FakeProxy, exchange

TOKEN = "t0ken"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def proxy() -> FakeProxy:
    return FakeProxy()


@pytest.fixture
def admin(proxy: FakeProxy) -> AdminRoot:
    pinned = PinnedSessions(proxy.balancers, proxy.reactor)
    metrics = RequestMetrics(proxy.balancers, pinned)
    return AdminRoot(
        Manager(proxy.balancers, StateFile(None), metrics), CrossSiteGuard(TOKEN), metrics, pinned
    )


def post_form(admin: AdminRoot, fields: dict[str, str], **headers: str):
    return exchange(admin, "POST", "/action", body=urlencode(fields).encode(),
                    headers={**FORM, **headers})


def test_page_lists_members_with_token_and_headers(admin: AdminRoot) -> None:
    """The page shows every member with its state, and every form carries the token."""
    r = exchange(admin, "GET", "/")
    assert r.status == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
    text = r.text
    for route in ("node1", "node2"):
        assert f'data-route="{route}"' in text
    assert text.count('data-state="active"') == 2
    assert text.count(f'name="token" value="{TOKEN}"') == text.count("<form")
    assert "ajp://127.0.0.1:9001" in text and "active: takes new sessions" in text


def test_form_action_changes_state_and_redirects(admin: AdminRoot, proxy: FakeProxy) -> None:
    r = post_form(admin, {"token": TOKEN, "balancer": "app", "route": "node1", "action": "drain"})
    assert r.status == 303 and r.headers["location"].startswith("./?msg=")
    assert proxy.member("node1").status is MemberStatus.DRAINING
    page = exchange(admin, "GET", "/" + r.headers["location"][1:]).text
    assert 'data-state="draining"' in page and "app / node1: status draining" in page


@pytest.mark.parametrize(
    "fields, headers, reason",
    [
        ({}, {}, "missing token"),
        ({"token": "wrong"}, {}, "wrong token"),
        ({}, {"X-LB-Admin": "1"}, "missing token"),  # the script header does not do for forms
        ({"token": TOKEN}, {"Origin": "http://evil.example"}, "Origin"),
        ({"token": TOKEN}, {"Origin": "null"}, "Origin"),
        ({"token": TOKEN}, {"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site"),
        ({"token": TOKEN}, {"Sec-Fetch-Site": "same-site"}, "Sec-Fetch-Site"),
    ],
)
def test_form_refusals(admin: AdminRoot, proxy: FakeProxy, fields, headers, reason) -> None:
    """Without the token, or from another site, a form POST is a 403 and changes nothing."""
    base = {"balancer": "app", "route": "node1", "action": "disable"}
    r = post_form(admin, {**base, **fields}, **headers)
    assert r.status == 403 and reason in r.text
    assert proxy.member("node1").status is MemberStatus.ACTIVE


def test_same_origin_form_is_accepted(admin: AdminRoot, proxy: FakeProxy) -> None:
    r = post_form(
        admin, {"token": TOKEN, "balancer": "app", "route": "node1", "action": "disable"},
        Origin="http://127.0.0.1:8081", **{"Sec-Fetch-Site": "same-origin"},
    )
    assert r.status == 303
    assert proxy.member("node1").status is MemberStatus.DISABLED


def test_form_errors_show_on_the_page(admin: AdminRoot) -> None:
    r = post_form(admin, {"token": TOKEN, "balancer": "app", "route": "node2",
                          "action": "loadfactor", "loadfactor": "500"})
    assert r.status == 400 and 'role="alert"' in r.text and "from 1 to 100" in r.text
    r = post_form(admin, {"token": TOKEN, "balancer": "app", "action": "add",
                          "url": "ajp://127.0.0.1:9200", "route": "node3", "loadfactor": "2"})
    assert r.status == 303
    assert 'data-route="node3"' in exchange(admin, "GET", "/").text


def test_only_post_changes_state(admin: AdminRoot, proxy: FakeProxy) -> None:
    r = exchange(admin, "GET", "/action?token=t0ken&balancer=app&route=node1&action=disable")
    assert r.status == 405
    assert proxy.member("node1").status is MemberStatus.ACTIVE


def test_api_reads(admin: AdminRoot) -> None:
    r = exchange(admin, "GET", "/api/balancers")
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    (balancer,) = r.json()["balancers"]
    assert [m["route"] for m in balancer["members"]] == ["node1", "node2"]
    assert exchange(admin, "GET", "/api/balancers/app").json()["name"] == "app"
    member = exchange(admin, "GET", "/api/balancers/app/members/node2").json()
    assert member["url"] == "ajp://127.0.0.1:9002" and member["usable"] is True
    assert exchange(admin, "GET", "/api/balancers/nope").status == 404
    assert exchange(admin, "GET", "/api/balancers/app/members/nodeX").status == 404


def test_api_actions(admin: AdminRoot, proxy: FakeProxy) -> None:
    """POSTs with the token header or the X-LB-Admin header change state; others are 403."""
    drain = json.dumps({"action": "drain"}).encode()
    path = "/api/balancers/app/members/node1"
    assert exchange(admin, "POST", path, body=drain).status == 403
    assert exchange(admin, "POST", path, body=drain, headers={"X-LB-Token": "bad"}).status == 403
    r = exchange(admin, "POST", path, body=drain,
                 headers={"X-LB-Admin": "1", "Origin": "https://evil.example"})
    assert r.status == 403 and proxy.member("node1").status is MemberStatus.ACTIVE
    r = exchange(admin, "POST", path, body=drain, headers={"X-LB-Token": TOKEN})
    assert r.status == 200 and r.json() == {"status": "draining"}
    r = exchange(admin, "POST", "/api/balancers/app/members", headers={"X-LB-Admin": "1"},
                 body=json.dumps({"url": "ajp://127.0.0.1:9300", "route": "n3"}).encode())
    assert r.status == 201 and r.json()["route"] == "n3"
    r = exchange(admin, "POST", path, body=b"{nope", headers={"X-LB-Admin": "1"})
    assert r.status == 400


def entry(proxy: FakeProxy, route: str, status: int = 200, **extra):
    request = DummyRequest([b""])
    request.uri = b"/app/page"
    for name, value in extra.pop("headers", {}).items():
        request.requestHeaders.setRawHeaders(name, [value])
    base = {
        "request": request, "status": status, "bytes": 10,
        "member": proxy.member(route).name if route else "-",
        "route_changed": False, "attempts": 1, "upstream_seconds": 0.02,
        "first_byte_seconds": 0.01, "balancer": "app", "sticky": False,
    }
    base.update(extra)
    return base


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics(admin: AdminRoot, proxy: FakeProxy) -> None:
    """Per-request counters and histograms, and gauges read from the snapshots."""
    metrics = admin.children[b"metrics"]._metrics  # the hook the proxy calls
    node1 = proxy.member("node1").name
    for _ in range(3):
        metrics.observe(entry(proxy, "node1"))
    metrics.observe(entry(proxy, "node1", 502, attempts=2, first_byte_seconds=None))
    metrics.observe(entry(proxy, "", 503, attempts=0, first_byte_seconds=None))
    metrics.observe(entry(proxy, "node2", 200, route_changed=True))
    balancer = proxy.balancers["app"].balancer
    balancer.request_started(proxy.member("node2"))
    balancer.request_finished(proxy.member("node1"), bytes_in=1234, bytes_out=56)
    balancer.set_status(proxy.member("node2"), MemberStatus.DRAINING)
    r = exchange(admin, "GET", "/metrics")
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    s = samples(r.text)
    lab = {"balancer": "app", "member": node1}
    key = lambda name, **labels: (name, tuple(sorted(labels.items())))  # noqa: E731
    assert s[key("twisted_lb_requests_total", **lab, code_class="2xx")] == 3
    assert s[key("twisted_lb_requests_total", **lab, code_class="5xx")] == 1
    assert s[key("twisted_lb_requests_total", balancer="app", member="-", code_class="5xx")] == 1
    assert s[key("twisted_lb_request_duration_seconds_count", **lab)] == 4
    assert s[key("twisted_lb_upstream_response_seconds_count", **lab)] == 3
    assert s[key("twisted_lb_request_duration_seconds_bucket", **lab, le="0.025")] == 4
    assert s[key("twisted_lb_attempts_total", balancer="app")] == 6
    assert s[key("twisted_lb_retries_total", balancer="app")] == 1
    assert s[key("twisted_lb_route_changes_total", balancer="app")] == 1
    mlab = {"balancer": "app", "member": node1, "route": "node1"}
    n2 = {"balancer": "app", "member": proxy.member("node2").name, "route": "node2"}
    assert s[key("twisted_lb_member_received_bytes_total", **mlab)] == 1234
    assert s[key("twisted_lb_member_sent_bytes_total", **mlab)] == 56
    assert s[key("twisted_lb_member_up", **mlab)] == 1
    assert s[key("twisted_lb_member_in_flight", **n2)] == 1
    assert s[key("twisted_lb_member_state", **n2, state="draining")] == 1
    assert s[key("twisted_lb_member_state", **n2, state="active")] == 0
    assert s[key("twisted_lb_member_pinned_sessions", **n2)] == 0
    assert not any(name == "twisted_lb_member_check_up" for name, _ in s)


def test_check_results_in_metrics_and_page(admin: AdminRoot, proxy: FakeProxy, monkeypatch) -> None:
    """A member's 'check' (from the health checker) shows on the page and as check_up."""
    member = proxy.member("node1")
    original = type(member).to_dict

    now = proxy.reactor.seconds()

    def with_check(self):
        d = original(self)
        if self is member:
            d["checked"] = True
            d["check"] = {
                "ok": False, "detail": "CPING timed out", "at": now - 3, "duration": 2.0,
                "passes": 0, "fails": 9, "running": False, "next_at": now + 4,
            }  # fmt: skip
        return d

    monkeypatch.setattr(type(member), "to_dict", with_check)
    s = samples(exchange(admin, "GET", "/metrics").text)
    labels = (("balancer", "app"), ("member", member.name), ("route", "node1"))
    assert s[("twisted_lb_member_check_up", labels)] == 0
    page = exchange(admin, "GET", "/").text
    assert "CPING timed out in 2000 ms, 9 fails, 3 s ago, next check in 4 s" in page
    assert "ok=False" not in page  # words, not the record


def test_pinned_sessions_on_a_draining_member(admin: AdminRoot, proxy: FakeProxy) -> None:
    """Sticky requests to a draining member count distinct sessions within the window."""
    metrics = admin.children[b"metrics"]._metrics
    proxy.balancers["app"].balancer.set_status(proxy.member("node1"), MemberStatus.DRAINING)
    for sid in (b"A.node1", b"B.node1", b"A.node1"):
        metrics.observe(entry(proxy, "node1", sticky=True,
                              headers={b"cookie": b"x=1; JSESSIONID=" + sid}))
    metrics.observe(entry(proxy, "node1", sticky=False, headers={b"cookie": b"JSESSIONID=C.node1"}))
    pinned = admin.pinned
    assert pinned.summary("app", proxy.member("node1").name)["sessions"] == 2
    page = exchange(admin, "GET", "/").text
    assert "2 session(s) in the last 10 min" in page
    proxy.reactor.advance(601)
    assert pinned.summary("app", proxy.member("node1").name)["sessions"] == 0


def test_password_hashes() -> None:
    stored = hash_password("s3cret", iterations=1000)
    assert stored.startswith("pbkdf2_sha256$1000$")
    assert verify_password("s3cret", stored) and verify_password(b"s3cret", stored)
    assert not verify_password("S3cret", stored)
    assert not verify_password("s3cret", "pbkdf2_sha256$bad")
    assert hash_password("s3cret") != hash_password("s3cret")  # salted


def test_member_counters_publish_increases(proxy: FakeProxy) -> None:
    """With workers, a worker copies its member counters to the shared files by their
    increase since the last copy (a member rebuilt from 0 counts again from 0), and the
    requests in flight of a member that left the configuration go to 0."""
    registry = CollectorRegistry()
    counters = MemberCounters(proxy.balancers, registry)
    balancer = proxy.balancers["app"].balancer
    node1 = proxy.member("node1")
    labels = {"balancer": "app", "member": node1.name, "route": "node1"}
    value = lambda name: registry.get_sample_value(name, labels)  # noqa: E731
    balancer.request_started(node1)
    balancer.request_finished(node1, bytes_in=100, bytes_out=10)
    counters.publish()
    counters.publish()  # nothing new: nothing added
    assert value("twisted_lb_member_received_bytes_total") == 100
    balancer.request_started(node1)
    balancer.request_started(node1)
    balancer.request_finished(node1, bytes_in=50, bytes_out=0)
    counters.publish()
    assert value("twisted_lb_member_received_bytes_total") == 150
    assert value("twisted_lb_member_sent_bytes_total") == 10
    assert value("twisted_lb_member_in_flight") == 1
    # A reload that rebuilds the balancer: its counters start again from 0.
    proxy.balancers["app"] = FakeProxy().balancers["app"]
    fresh = proxy.member("node1")
    proxy.balancers["app"].balancer.request_finished(fresh, bytes_in=7, bytes_out=0)
    counters.publish()
    assert value("twisted_lb_member_received_bytes_total") == 157
    # The member leaves the configuration.
    del proxy.balancers["app"]
    counters.publish()
    assert value("twisted_lb_member_in_flight") == 0


def test_state_shown_as_it_really_is(admin: AdminRoot, proxy: FakeProxy) -> None:
    """A member in error is shown 'in error' (red), not a green 'active'; slow start too."""
    balancer = proxy.balancers["app"].balancer
    node1 = proxy.member("node1")
    balancer.record_failure(node1, "cannot connect to 127.0.0.1:9001: connection refused")
    page = exchange(admin, "GET", "/").text
    row = page.split('data-route="node1"', 1)[1].split("</tr>", 1)[0]
    assert 'class="state error" data-state="error">in error</span>' in row
    assert 'data-state="active"' not in row
    assert page.count('data-state="active"') == 1  # node2
    api = exchange(admin, "GET", "/api/balancers/app/members/node1").json()
    assert api["state"] == "error" and api["state_text"] == "in error"


def test_last_usable_member_asks_first(admin: AdminRoot, proxy: FakeProxy) -> None:
    """
    Disabling or draining the last member that takes new requests shows a
    question first; the confirmed form does it. Other members need no question.
    """
    r = post_form(admin, {"token": TOKEN, "balancer": "app", "route": "node1", "action": "disable"})
    assert r.status == 303  # node2 still takes new requests
    for action in ("drain", "disable"):
        fields = {"token": TOKEN, "balancer": "app", "route": "node2", "action": action}
        r = post_form(admin, fields)
        assert r.status == 200 and 'role="alertdialog"' in r.text
        assert "node2 is the last member of balancer app that takes new requests" in r.text
        assert 'name="confirmed" value="1"' in r.text
        assert proxy.member("node2").status is MemberStatus.ACTIVE  # nothing done yet
    r = post_form(admin, {**fields, "confirmed": "1"})
    assert r.status == 303
    assert proxy.member("node2").status is MemberStatus.DISABLED


def test_page_says_version_uptime_file_and_last_reload(admin: AdminRoot, proxy: FakeProxy) -> None:
    from twisted_lb import __version__

    proxy.reactor.advance(130)
    admin.about = lambda: {
        "version": __version__, "started": 10.0, "now": proxy.reactor.seconds(),
        "source": "/etc/twisted_lb/site.toml", "last_reload": (70.0, "members added: app/node3"),
    }  # fmt: skip
    page = exchange(admin, "GET", "/").text
    assert (
        f"twisted_lb {__version__} · up 2 min · configuration /etc/twisted_lb/site.toml · "
        "last reload 60 s ago: members added: app/node3"
    ) in page


def test_sessions_estimated_on_every_member(admin: AdminRoot, proxy: FakeProxy) -> None:
    """
    An active member's distinct sticky sessions are estimated and shown on the
    page, in the API and in /metrics; they leave the window after 10 to 11 minutes.
    """
    metrics = admin.children[b"metrics"]._metrics
    for i in range(120):
        for _ in range(2):
            metrics.observe(entry(proxy, "node1", sticky=True,
                                  headers={b"cookie": b"JSESSIONID=S%d.node1" % i}))
    metrics.observe(entry(proxy, "node2", sticky=False, headers={b"cookie": b"JSESSIONID=X.node2"}))
    node1, node2 = proxy.member("node1").name, proxy.member("node2").name
    described = exchange(admin, "GET", "/api/balancers/app/members/node1").json()["pinned"]
    assert described["exact"] is False and described["window_seconds"] == 600
    assert abs(described["sessions"] - 120) <= 3 and described["relative_error"] < 0.025
    assert exchange(admin, "GET", "/api/balancers/app/members/node2").json()["pinned"]["sessions"] == 0
    page = exchange(admin, "GET", "/").text
    assert f"\u2248 {described['sessions']} sessions (10 min)" in page
    assert "\u2248 0 sessions (10 min)" in page  # node2: its only request was not sticky
    s = samples(exchange(admin, "GET", "/metrics").text)
    labels = lambda member, route: (("balancer", "app"), ("member", member), ("route", route))  # noqa: E731
    assert s[("twisted_lb_member_pinned_sessions", labels(node1, "node1"))] == described["sessions"]
    assert s[("twisted_lb_member_pinned_sessions", labels(node2, "node2"))] == 0
    proxy.reactor.advance(660)
    assert exchange(admin, "GET", "/api/balancers/app/members/node1").json()["pinned"]["sessions"] == 0
