"""
Apache idioms from real deployments, through twisted_lb, in front of real
Tomcat 10: the ROUTEID cookie that makes members sticky when the proxy, not
Tomcat's jvmRoute, names the route, and Require/Header on the same site.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .proxy_process import ProxyClient, free_port, running_proxy
from .tomcat import LOOPBACK, TomcatGroup

SITE = """\
Listen {LOOPBACK}:{PORT}
<VirtualHost {LOOPBACK}:{PORT}>
    ServerName app.example.com
    Header add Set-Cookie "ROUTEID=.%{{BALANCER_WORKER_ROUTE}}e; path=/" env=BALANCER_ROUTE_CHANGED
    Header always set X-Frame-Options SAMEORIGIN
    <Proxy balancer://app>
        BalancerMember {MEMBER1} route=1 retry=1
        BalancerMember {MEMBER2} route=2 retry=1
        ProxySet stickysession=ROUTEID
    </Proxy>
    ProxyPass /app balancer://app/app
    ProxyPassReverse /app balancer://app/app
    <Location /app/static>
        Require ip 10.0.0.0/8
    </Location>
</VirtualHost>
"""


@pytest.fixture(scope="module")
def proxy_port(tomcat_pair: TomcatGroup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    t1, t2 = tomcat_pair
    port = free_port()
    text = SITE.format(
        LOOPBACK=LOOPBACK,
        PORT=port,
        MEMBER1=f"http://{LOOPBACK}:{t1.http_port}",
        MEMBER2=f"http://{LOOPBACK}:{t2.http_port}",
    )
    directory: Path = tmp_path_factory.mktemp("apache-idioms")
    with running_proxy(directory, text, [port], name="site.conf"):
        yield port


def test_route_cookie_keeps_a_session_on_its_tomcat_and_moves_on_failover(
    proxy_port: int, tomcat_pair: TomcatGroup
) -> None:
    client = ProxyClient(proxy_port, adopt_cookies=True)
    first = client.get("/app/session")
    assert first.status == 200, first.body[:300]
    node = first.json()["node"]
    route = client.cookies["ROUTEID"]
    assert route == ".1" if node == "tomcat1" else route == ".2"
    assert first.header_values("X-Frame-Options") == ["SAMEORIGIN"]
    for i in range(20):
        res = client.get("/app/session")
        doc = res.json()
        assert (doc["node"], doc["counter"]) == (node, i + 2)
        assert not [v for v in res.header_values("Set-Cookie") if v.startswith("ROUTEID")]
    # The session's Tomcat dies: the next request goes to the other one, with a new ROUTEID.
    dead = tomcat_pair[0] if node == "tomcat1" else tomcat_pair[1]
    dead.kill()
    res = client.get("/app/session")
    assert res.status == 200, res.body[:300]
    assert res.json()["node"] != node
    assert client.cookies["ROUTEID"] == (".2" if node == "tomcat1" else ".1")
    client.close()


def test_require_ip_refuses_this_client(proxy_port: int) -> None:
    client = ProxyClient(proxy_port)
    res = client.get("/app/static/1k.txt")
    assert res.status == 403
    assert res.header_values("X-Frame-Options") == ["SAMEORIGIN"]
    client.close()
