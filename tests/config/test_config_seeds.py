"""The two Apache configurations the project started from, read into the model."""

from __future__ import annotations

import pytest

from twisted_lb.config import (
    BackendTLSConfig,
    BalancerConfig,
    ConfigError,
    LBMethodName,
    ListenerConfig,
    MemberConfig,
    MemberState,
    ProxyConfig,
    RouteConfig,
    StickySessionConfig,
    TLSConfig,
    load_config,
    load_toml_text,
    read_apache,
    to_toml,
)

from .helpers import fixture, write

SHADOW_WARNING = (
    "Apache checks ProxyPass rules in file order, so /xtam/websocket-tunnel (line 31) is "
    "shadowed by / (line 28) there and never used; twisted_lb picks the longest prefix, so it "
    "is used here"
)


def _member(url: str, route: str, verify: bool = True) -> MemberConfig:
    return MemberConfig(
        url=url,
        route=route,
        loadfactor=1.0,
        lbset=0,
        status=MemberState.ACTIVE,
        retry=60.0,
        connectiontimeout=5.0,
        timeout=300.0,
        ping=2.0,
        secret=None,
        packet_size=8192,
        max=256,
        ttl=30.0,
        tls=BackendTLSConfig(verify=verify, ca_file=None, client_certificate=None),
    )


def expected_seed_000() -> ProxyConfig:
    path = fixture("seed-000.conf")
    sticky = StickySessionConfig(
        cookie_names=("JSESSIONID",), path_names=("JSESSIONID",), separator="."
    )
    return ProxyConfig(
        listeners=(
            ListenerConfig(
                endpoint="tcp:18080",
                tls=None,
                redirect="https://127.0.0.1:18443",
                redirect_status=302,
            ),
            ListenerConfig(
                endpoint="tcp:18443",
                tls=TLSConfig(
                    certificate=fixture("tls/cert-name.crt"),
                    key=fixture("tls/private_key.key"),
                    chain=None,
                ),
                redirect=None,
                # The seed has no Protocols h2: Apache serves it HTTP/1.1 only.
                http2=False,
            ),
        ),
        balancers=(
            BalancerConfig(
                name="xtam-https-balancer",
                members=(
                    _member("https://127.0.0.1:16443", "hosta", verify=False),
                    _member("https://127.0.0.1:16444", "hostb", verify=False),
                ),
                lbmethod=LBMethodName.BYREQUESTS,
                sticky=sticky,
                nofailover=False,
                maxattempts=None,
                probe_interval=1.0,
            ),
            BalancerConfig(
                name="xtam-ws-balancer",
                members=(
                    _member("ws://127.0.0.1:16443", "hosta"),
                    _member("ws://127.0.0.1:16444", "hostb"),
                ),
                lbmethod=LBMethodName.BYREQUESTS,
                sticky=sticky,
                nofailover=False,
                maxattempts=None,
                probe_interval=1.0,
            ),
        ),
        routes=(
            RouteConfig(path="/", balancer="xtam-https-balancer", target_path="/"),
            RouteConfig(
                path="/xtam/websocket-tunnel",
                balancer="xtam-ws-balancer",
                target_path="/xtam/websocket-tunnel",
            ),
        ),
        source=path,
        timeout=300.0,
        x_forwarded=True,
        access_log=None,
    )


def expected_seed_001() -> ProxyConfig:
    return ProxyConfig(
        listeners=(ListenerConfig(endpoint="tcp:18080", server_name="localhost"),),
        balancers=(
            BalancerConfig(
                name="app",
                members=(
                    _member("ajp://localhost:8010/share", "tomcat1"),
                    _member("ajp://localhost:8011/share", "tomcat2"),
                ),
                lbmethod=LBMethodName.BYREQUESTS,
                sticky=StickySessionConfig(
                    cookie_names=("JSESSIONID",), path_names=("jsessionid",), separator="."
                ),
                nofailover=False,
                maxattempts=None,
                probe_interval=1.0,
            ),
        ),
        routes=(RouteConfig(path="/share", balancer="app", target_path=""),),
        source=fixture("seed-001.conf"),
    )


def test_seed_000_model() -> None:
    """The HTTPS + WebSocket seed becomes a redirect listener, a TLS listener, two balancers."""
    config, warnings = read_apache(fixture("seed-000.conf"))
    assert config == expected_seed_000()
    assert warnings == [SHADOW_WARNING]


def test_seed_001_model() -> None:
    """The AJP seed becomes one plain listener, one sticky AJP balancer and /share."""
    config, warnings = read_apache(fixture("seed-001.conf"))
    warnings = [w for w in warnings if "is accepted and has no effect" not in w]
    assert config == expected_seed_001()
    assert warnings == []


def test_seed_000_url_construction() -> None:
    """Member path + target_path + rest of the request path gives Apache's backend URLs."""
    config = load_config(fixture("seed-000.conf"))
    root, ws = config.routes
    member = config.balancer("xtam-https-balancer").members[0]
    rest = "/xtam/index.html"[len(root.path) :]
    assert member.path + root.target_path + rest == "/xtam/index.html"
    ws_member = config.balancer("xtam-ws-balancer").members[0]
    rest = "/xtam/websocket-tunnel?x=1"[len(ws.path) :]
    assert ws_member.path + ws.target_path + rest == "/xtam/websocket-tunnel?x=1"


def test_seed_001_url_construction() -> None:
    """Under /share the AJP member sees /share/… as Apache sends it."""
    config = load_config(fixture("seed-001.conf"))
    (route,) = config.routes
    member = config.balancer("app").members[0]
    assert member.path + route.target_path + "/share/page/site"[len(route.path) :] == (
        "/share/page/site"
    )


@pytest.mark.parametrize("name", ["seed-000.conf", "seed-001.conf"])
def test_seed_round_trip(name: str) -> None:
    """Converting a seed to TOML and reading that back gives an equal model."""
    config, _ = read_apache(fixture(name))
    assert load_toml_text(to_toml(config), config.source) == config


def test_seed_000_as_published_is_refused() -> None:
    """The configuration as the blog printed it (closers lost) is an error, not a guess."""
    with pytest.raises(ConfigError) as e:
        read_apache(fixture("seed-000-as-published.conf"))
    assert e.value.key == "line 20"
    assert "<Proxy> is never closed" in e.value.problem


def test_seed_001_as_published_is_refused() -> None:
    """The AJP seed as printed (no </Proxy>, no listener) is an error naming the line."""
    with pytest.raises(ConfigError) as e:
        read_apache(fixture("seed-001-as-published.conf"))
    assert e.value.key == "line 1"


def test_seed_000_redirect_without_url(tmp_path) -> None:
    """The port-80 Redirect that lost its URL is an error naming its line."""
    text = open(fixture("seed-000.conf"), encoding="utf-8").read()
    text = text.replace("Redirect / https://127.0.0.1:18443/", "Redirect /")
    path = write(tmp_path, "mangled.conf", text)
    with pytest.raises(ConfigError) as e:
        read_apache(path)
    assert (e.value.source, e.value.key) == (path, "line 2")
    assert "no target URL" in e.value.problem
