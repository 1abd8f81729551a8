"""
Whole Apache sites in the style of real deployments (tests/config/fixtures/sites):
each loads with its proxy meaning, or is refused with one clear reason, and
converts to TOML that reads back as the same model.
"""

from __future__ import annotations

import os

import pytest

from twisted_lb.access import AccessRule
from twisted_lb.config import load_toml_text, read_apache, to_toml
from twisted_lb.header_edits import HeaderEdit
from twisted_lb.request_rules import Condition

from .helpers import FIXTURES

SITES = os.path.join(FIXTURES, "sites")
LOADING = [
    "guacamole.conf",
    "jenkins.conf",
    "keycloak.conf",
    "nexus.conf",
    "rocketchat.conf",
    "tomcat-cluster.conf",
]


def site(name: str):
    return read_apache(os.path.join(SITES, name))


@pytest.mark.parametrize("name", LOADING)
def test_site_converts_to_the_same_model(name: str) -> None:
    """The converted TOML reads back as the model the Apache file gave."""
    config, _ = site(name)
    assert load_toml_text(to_toml(config), config.source) == config


def test_jenkins() -> None:
    """Jenkins' AllowEncodedSlashes NoDecode with ProxyPass … nocanon: its route passes %2F on."""
    config, _ = site("jenkins.conf")
    [route] = config.routes
    assert route.path == "/" and route.encoded_slashes and route.preserve_host


def test_keycloak() -> None:
    """HTTPS with TLS 1.2+, HSTS, the ROUTEID idiom and an address-restricted admin path."""
    config, _ = site("keycloak.conf")
    [listener] = config.listeners
    assert listener.tls is not None and listener.tls.protocols == ("TLSv1.2", "TLSv1.3")
    [route] = config.routes
    assert route.path == "/auth" and route.preserve_host
    assert route.response_headers == (
        HeaderEdit("set", "Strict-Transport-Security", "max-age=63072000", always=True),
        HeaderEdit(
            "add",
            "Set-Cookie",
            "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/",
            condition="BALANCER_ROUTE_CHANGED",
        ),
    )
    assert route.access == (
        AccessRule("/auth", "require", ("all",)),
        AccessRule("/auth/admin", "require", ("10.0.0.0/8", "192.168.0.0/16")),
    )
    [balancer] = config.balancers
    assert balancer.sticky is not None and balancer.sticky.cookie_names == ("ROUTEID",)


def test_guacamole() -> None:
    """Location-based ProxyPass: the page and the WebSocket tunnel, no shadowing warning."""
    config, warnings = site("guacamole.conf")
    assert {r.path for r in config.routes} == {"/guacamole/", "/guacamole/websocket-tunnel"}
    assert not [w for w in warnings if "shadowed" in w]


def test_tomcat_cluster() -> None:
    """The manual's cluster: members, states, stickiness, limits, TRACE off, manager excluded."""
    config, warnings = site("tomcat-cluster.conf")
    [cluster] = config.balancers
    assert [m.route for m in cluster.members] == ["node1", "node2", "node3"]
    assert cluster.members[2].status.value == "standby"
    assert config.allow_trace is False and config.limits.max_body_bytes == 10485760
    assert config.timeout == 120
    assert {r.path: r.balancer for r in config.routes} == {
        "/balancer-manager": None,
        "/server-status": None,
        "/": "mycluster",
    }
    assert any("SetHandler balancer-manager" in w for w in warnings)
    # Both locations: the manager lets local and 10.1.0.0/16 in, the status
    # page local only; the admin listener takes the intersection.
    assert config.admin is not None and config.admin.allow == ("local",)
    assert config.admin.endpoint == "tcp:8081:interface=127.0.0.1"


def test_rocketchat() -> None:
    """The HTTP host redirects by rule; the HTTPS host splits upgrades by rule."""
    config, _ = site("rocketchat.conf")
    statuses = [(r.status, r.conditions[-1].pattern) for r in config.rules]
    assert statuses == [(301, "!=on"), (0, "=websocket"), (0, "!=websocket")]
    ws, http = config.rules[1], config.rules[2]
    assert ws.conditions[0] == Condition("%{HTTP:CONNECTION}", "Upgrade", nocase=True)
    assert ws.balancer.startswith("ws-") and http.balancer.startswith("http-")


def test_nexus() -> None:
    """A redirect-only HTTP host, and an HTTPS host with headers, RedirectMatch and a login."""
    config, _ = site("nexus.conf")
    http, https = config.listeners
    assert http.redirect == "https://repo.example.com" and http.redirect_status == 301
    assert https.tls is not None and https.tls.protocols == ("TLSv1.2", "TLSv1.3")
    [route] = config.routes
    assert [a.path for a in route.auth if a.user_file] == ["/nexus/service/rest/v1/security"]
    assert [r.target for r in config.rules] == ["/nexus/"]
