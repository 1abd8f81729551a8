"""The native TOML reader: every key, every type check, every error."""

from __future__ import annotations

import pytest

from twisted_lb.access import AccessRule
from twisted_lb.config import (
    AdminConfig,
    BackendTLSConfig,
    BalancerConfig,
    ConfigError,
    HealthCheckConfig,
    HealthCheckKind,
    LBMethodName,
    LimitsConfig,
    ListenerConfig,
    MemberConfig,
    MemberState,
    ProxyConfig,
    RouteConfig,
    StickySessionConfig,
    TLSConfig,
    load_toml,
    load_toml_text,
)
from twisted_lb.header_edits import HeaderEdit
from twisted_lb.request_rules import Condition, RequestRule

from .helpers import FIXTURES, fixture, write

MINIMAL = """
[[listen]]
endpoint = "tcp:8080"

[balancers.app]
[[balancers.app.members]]
url = "ajp://127.0.0.1:8009"

[[routes]]
path = "/"
balancer = "app"
"""


def error(text: str, source: str = "test.toml") -> ConfigError:
    """Read C{text}, expecting a ConfigError; return it."""
    with pytest.raises(ConfigError) as e:
        load_toml_text(text, source)
    return e.value


def test_every_key() -> None:
    """A file that sets every key gives exactly the expected model; paths are resolved."""
    config = load_toml(fixture("every-key.toml"))
    d = FIXTURES + "/"
    assert config == ProxyConfig(
        listeners=(
            ListenerConfig(
                "tcp:18443:interface=127.0.0.1",
                tls=TLSConfig(
                    d + "tls/cert.pem",
                    d + "tls/key.pem",
                    d + "tls/chain.pem",
                    client_certificates="optional",
                    client_ca=d + "tls/ca.pem",
                ),
                server_name="www.example.com",
                http2=False,
            ),
            ListenerConfig("tcp:18080", redirect="https://localhost:18443", redirect_status=308),
        ),
        balancers=(
            BalancerConfig(
                name="app",
                members=(
                    MemberConfig(
                        url="ajp://127.0.0.1:8009/share",
                        route="tomcat1",
                        loadfactor=2.5,
                        lbset=1,
                        status=MemberState.DRAINING,
                        retry=30.0,
                        connectiontimeout=0.25,
                        timeout=60.0,
                        ping=0.0,
                        secret='s3cr"et\\',
                        packet_size=65536,
                        max=10,
                        ttl=15.0,
                    ),
                    MemberConfig(
                        url="ajp://127.0.0.1:8010/share",
                        route="tomcat2",
                        status=MemberState.STANDBY,
                        timeout=120.0,
                    ),
                ),
                lbmethod=LBMethodName.BYBUSYNESS,
                sticky=StickySessionConfig(("JSESSIONID",), ("jsessionid",), "."),
                nofailover=True,
                maxattempts=2,
                probe_interval=0.5,
                health=HealthCheckConfig(
                    kind=HealthCheckKind.TCP,
                    interval=3.0,
                    timeout=1.5,
                    passes=1,
                    fails=2,
                    slow_start=20.0,
                ),
            ),
            BalancerConfig(
                name="tls nodes",
                members=(
                    MemberConfig(
                        url="https://127.0.0.1:16443",
                        timeout=120.0,
                        tls=BackendTLSConfig(False, d + "ca.pem", "/etc/client.pem"),
                        health=HealthCheckConfig(
                            kind=HealthCheckKind.HTTP,
                            method="HEAD",
                            path="/health",
                            expect="200,204-299",
                        ),
                    ),
                    MemberConfig(
                        url="https://127.0.0.1:16444",
                        timeout=120.0,
                        status=MemberState.DISABLED,
                    ),
                ),
                sticky=StickySessionConfig(("SID", "sid"), ("sid",), "!"),
            ),
            BalancerConfig(
                name="ws",
                members=(MemberConfig(url="ws://127.0.0.1:16443", timeout=120.0),),
                sticky=None,
            ),
        ),
        routes=(
            RouteConfig(
                "/share",
                "app",
                "",
                preserve_host=True,
                timeout=60.0,
                cookie_path=(("/share/", "/share/"), ("/internal", "/")),
                request_headers=(HeaderEdit("set", "X-Forwarded-Proto", "https"),),
                response_headers=(
                    HeaderEdit(
                        "add",
                        "Set-Cookie",
                        "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/",
                        condition="BALANCER_ROUTE_CHANGED",
                    ),
                    HeaderEdit(
                        "edit*",
                        "Location",
                        "^http://",
                        "https://",
                        always=True,
                        condition="BALANCER_ROUTE_CHANGED",
                        negate=True,
                    ),
                ),
                access=(
                    AccessRule("/share", "require", ("10.0.0.0/8", "local")),
                    AccessRule("/share/admin", "deny,allow", ("10.1.2.3",), ("all",)),
                ),
                cookie_domain=(("backend.internal", "example.com"),),
            ),
            RouteConfig("/", "tls nodes", "/"),
            RouteConfig("/ws", "ws", "", hosts=("_default_", "www.example.com", "*.example.org")),
            RouteConfig("/static", None, ""),
            RouteConfig("/admin", None, ""),
        ),
        source=fixture("every-key.toml"),
        timeout=120.0,
        x_forwarded=False,
        allow_trace=False,
        access_log=d + "logs/access.log",
        admin=AdminConfig(
            endpoint="tcp:18081",
            user="ops",
            password="pbkdf2_sha256$1000$c2FsdA$aGFzaA",
            state_file=d + "state/manager.json",
            allow=("10.0.0.0/8", "::1"),
        ),
        limits=LimitsConfig(
            max_headers=50,
            max_header_bytes=8000,
            header_timeout=10.0,
            header_timeout_max=30.0,
            body_timeout=15.0,
            min_rate=1000,
            idle_timeout=20.0,
            send_timeout=45.0,
            max_connections=5000,
            max_body_bytes=52428800,
        ),
        workers=2,
        rules=(
            RequestRule(
                "(.*)",
                "https://%{HTTP_HOST}$1",
                301,
                conditions=(
                    Condition("%{HTTPS}", "off", nocase=True, ornext=True),
                    Condition("%{HTTP:X-Forwarded-Proto}", "=http"),
                ),
                hosts=("www.example.com",),
            ),
            RequestRule(
                "^/ws/(.*)", "/ws/$1", 0, balancer="ws", nocase=True, qsa=True, noescape=True
            ),
            RequestRule("/old", "https://example.com/new", 302, prefix=True, after_routes=True),
        ),
    )


def test_defaults() -> None:
    """Keys left out take the model's defaults (sticky on JSESSIONID, verify on)."""
    config = load_toml_text(MINIMAL, "<test>")
    assert config == ProxyConfig(
        listeners=(ListenerConfig("tcp:8080"),),
        balancers=(BalancerConfig("app", (MemberConfig("ajp://127.0.0.1:8009"),)),),
        routes=(RouteConfig("/", "app", "/"),),
        source="<test>",
    )


def test_top_level_timeout_is_the_members_default() -> None:
    """The top-level timeout is the timeout of members that set none (ProxyTimeout)."""
    config = load_toml_text("timeout = 45\n" + MINIMAL, "<test>")
    assert config.timeout == 45.0
    assert config.balancers[0].members[0].timeout == 45.0


def test_tls_key_defaults_to_certificate(tmp_path) -> None:
    """A listener's tls table without key reads the key from the certificate file."""
    path = write(
        tmp_path,
        "c.toml",
        MINIMAL.replace(
            'endpoint = "tcp:8080"', 'endpoint = "tcp:8443"\ntls = { certificate = "both.pem" }'
        ),
    )
    tls = load_toml(path).listeners[0].tls
    assert tls == TLSConfig(str(tmp_path / "both.pem"), str(tmp_path / "both.pem"))


def test_listener_http2_is_on_by_default_and_a_boolean() -> None:
    """http2 in a listen table is true (the default) or false, nothing else."""
    assert load_toml_text(MINIMAL, "test.toml").listeners[0].http2
    e = error(MINIMAL.replace('"tcp:8080"', '"tcp:8080"\nhttp2 = "yes"'))
    assert e.key == "listen[0].http2" and "true or false" in e.problem


def test_unknown_key_with_suggestion() -> None:
    """An unknown key is an error with its full key path and the closest known key."""
    e = error(MINIMAL.replace('url = "ajp://127.0.0.1:8009"', 'url = "ajp://h"\nloadfactr = 2'))
    assert e.source == "test.toml"
    assert e.key == "balancers.app.members[0].loadfactr"
    assert e.problem.startswith("unknown key 'loadfactr' (did you mean 'loadfactor'?)")


def test_unknown_top_level_key() -> None:
    """Unknown keys at the top, in listen, in routes, in tls tables are all errors."""
    assert error("timout = 3\n" + MINIMAL).key == "timout"
    assert "did you mean 'timeout'" in error("timout = 3\n" + MINIMAL).problem
    e = error(MINIMAL.replace('balancer = "app"', 'balancer = "app"\npreservehost = true'))
    assert e.key == "routes[0].preservehost" and "preserve_host" in e.problem
    e = error(MINIMAL.replace('"tcp:8080"', '"tcp:8080"\ntls = { cert = "x" }'))
    assert e.key == "listen[0].tls.cert" and "certificate" in e.problem


@pytest.mark.parametrize(
    "old, new, key",
    [
        ('url = "ajp://127.0.0.1:8009"', "url = 5", "balancers.app.members[0].url"),
        ('path = "/"', "path = 5", "routes[0].path"),
        ('endpoint = "tcp:8080"', "endpoint = 5", "listen[0].endpoint"),
    ],
)
def test_wrong_types(old: str, new: str, key: str) -> None:
    """Values of the wrong type are errors naming the key and both types."""
    e = error(MINIMAL.replace(old, new))
    assert e.key == key
    assert e.problem == "must be a string, not an integer (5)"


def test_bool_is_not_a_number() -> None:
    """true where a number belongs is an error, not 1."""
    e = error(MINIMAL.replace('url = "ajp://127.0.0.1:8009"', 'url = "ajp://h"\nloadfactor = true'))
    assert e.key == "balancers.app.members[0].loadfactor" and "a boolean" in e.problem


def test_bad_loadfactor_names_its_key() -> None:
    """The model's loadfactor check is reported with the key path."""
    e = error(MINIMAL.replace('url = "ajp://127.0.0.1:8009"', 'url = "ajp://h"\nloadfactor = 0'))
    assert e.key == "balancers.app.members[0].loadfactor"
    assert e.problem == "loadfactor must be between 1 and 100, not 0.0"


@pytest.mark.parametrize(
    "extra, key",
    [
        ("packet_size = 100", "balancers.app.members[0].packet_size"),
        ("retry = -1", "balancers.app.members[0].retry"),
        ('status = "up"', "balancers.app.members[0].status"),
    ],
)
def test_member_value_errors(extra: str, key: str) -> None:
    """Out-of-range member values are errors with the member's key path."""
    e = error(MINIMAL.replace('url = "ajp://127.0.0.1:8009"', 'url = "ajp://h"\n' + extra))
    assert e.key == key


def test_bad_url_and_missing_url() -> None:
    """A member URL with an unknown scheme, or none at all, names members[i].url."""
    e = error(MINIMAL.replace("ajp://127.0.0.1:8009", "ftp://h"))
    assert e.key == "balancers.app.members[0].url" and "ftp" in e.problem
    e = error(MINIMAL.replace('url = "ajp://127.0.0.1:8009"', 'route = "x"'))
    assert e.key == "balancers.app.members[0].url" and "required" in e.problem


def test_balancer_errors() -> None:
    """lbmethod, stickysession, maxattempts and member checks name the balancer's keys."""
    e = error(MINIMAL.replace("[balancers.app]", '[balancers.app]\nlbmethod = "random"'))
    assert e.key == "balancers.app.lbmethod" and "byrequests | bybusyness" in e.problem
    e = error(MINIMAL.replace("[balancers.app]", "[balancers.app]\nmaxattempts = 0"))
    assert e.key == "balancers.app.maxattempts"
    e = error(MINIMAL.replace("[balancers.app]", '[balancers.app]\nstickysession = ""'))
    assert e.key == "balancers.app.stickysession"
    e = error(MINIMAL.replace("[balancers.app]", "[balancers.app]\nstickysession = true"))
    assert e.key == "balancers.app.stickysession"
    e = error(
        MINIMAL.replace("[balancers.app]", '[balancers.app]\nstickysession = { cookies = "X" }')
    )
    assert e.key == "balancers.app.stickysession.cookies" and "'cookie'" in e.problem
    e = error(
        MINIMAL.replace("[[balancers.app.members]]\n", "").replace(
            'url = "ajp://127.0.0.1:8009"', ""
        )
    )
    assert e.key == "balancers.app.members" and "no members" in e.problem


def test_unknown_balancer_in_route() -> None:
    """A route naming an undefined balancer is an error with routes[i].balancer."""
    e = error(MINIMAL + '\n[[routes]]\npath = "/x"\nbalancer = "nope"\n')
    assert e.key == "routes[1].balancer"
    assert "'nope'" in e.problem and "defined: app" in e.problem


def test_route_errors() -> None:
    """Paths not starting with / and paths mapped twice are errors."""
    e = error(MINIMAL.replace('path = "/"', 'path = "x"'))
    assert e.key == "routes[0].path"
    e = error(MINIMAL + '\n[[routes]]\npath = "/"\n')
    assert e.key == "routes" and "twice" in e.problem


def test_listener_errors() -> None:
    """A listener without endpoint, a bad redirect status, and no listener at all are errors."""
    e = error(MINIMAL.replace('endpoint = "tcp:8080"', 'redirect = "https://h"'))
    assert e.key == "listen[0].endpoint"
    e = error(
        MINIMAL.replace('"tcp:8080"', '"tcp:8080"\nredirect = "https://h"\nredirect_status = 200')
    )
    assert e.key == "listen[0].redirect_status"
    e = error(
        MINIMAL.replace(
            '"tcp:8080"', '"tcp:8080"\ntls = { certificate = "c", client_certificates = "require" }'
        )
    )
    assert e.key.startswith("listen[0].tls") and "client_ca" in e.problem
    e = error(MINIMAL.replace('"tcp:8080"', '"tcp:8080"\nserver_name = "a b"'))
    assert e.key == "listen[0].server_name" and "host name" in e.problem
    e = error(MINIMAL.replace('[[listen]]\nendpoint = "tcp:8080"', ""))
    assert e.key == "listen" and "no listener" in e.problem


def test_syntax_error_names_the_line() -> None:
    """A TOML syntax error is a ConfigError with the line."""
    e = error('timeout = 3\n[[listen]\nendpoint = "x"\n')
    assert e.key == "line 2" and "TOML syntax error" in e.problem


def test_missing_file(tmp_path) -> None:
    """A missing file is a ConfigError naming it."""
    path = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError) as e:
        load_toml(path)
    assert e.value.source == path and "cannot be read" in e.value.problem


def test_balancers_must_be_tables() -> None:
    """balancers.NAME must be a table."""
    e = error("[balancers]\napp = 3\n")
    assert e.key == "balancers.app"


def test_health_member_keys_override_the_balancer_ones() -> None:
    """A member's health table is merged over its balancer's, key by key."""
    config = load_toml_text(
        MINIMAL.replace(
            "[balancers.app]\n",
            "[balancers.app]\nhealth = { interval = 2, fails = 1 }\n",
        )
        + '[[balancers.app.members]]\nurl = "http://127.0.0.1:8080"\n'
        'health = { path = "/ping", fails = 4 }\n'
    )
    balancer = config.balancers[0]
    assert balancer.health == HealthCheckConfig(interval=2.0, fails=1)
    ajp, http = balancer.members
    assert balancer.health_of(ajp) == balancer.health
    assert http.health == HealthCheckConfig(interval=2.0, fails=4, path="/ping")
    assert http.health.kind_for("http") is HealthCheckKind.HTTP
    assert balancer.health.kind_for("https") is HealthCheckKind.TCP
    assert balancer.health.kind_for("ajp") is HealthCheckKind.CPING


@pytest.mark.parametrize(
    "health, key, problem",
    [
        ('{ kind = "ping" }', "balancers.app.health.kind", "must be one of auto | cping"),
        ("{ passes = 0 }", "balancers.app.health.passes", "integer >= 1"),
        ("{ interval = 0 }", "balancers.app.health.interval", "greater than 0"),
        ('{ expect = "2xx" }', "balancers.app.health.expect", "statuses and ranges"),
        ('{ expect = "399-200" }', "balancers.app.health.expect", "within 100-599"),
        ('{ method = "get" }', "balancers.app.health.method", "upper-case"),
        ('{ path = "health" }', "balancers.app.health.path", "start with '/'"),
        ("{ slow_start = -1 }", "balancers.app.health.slow_start", "must not be negative"),
        ('{ kind = "http" }', "balancers.app.members", "AJP members are checked with cping"),
        ("{ timeot = 1 }", "balancers.app.health.timeot", "did you mean 'timeout'"),
    ],
)
def test_health_errors(health: str, key: str, problem: str) -> None:
    e = error(MINIMAL.replace("[balancers.app]\n", f"[balancers.app]\nhealth = {health}\n"))
    assert e.key == key
    assert problem in e.problem


def test_limits_are_checked() -> None:
    """Unknown or inconsistent [limits] keys name the key."""
    e = error(MINIMAL + "\n[limits]\nmax_header = 10\n")
    assert e.key == "limits.max_header" and "max_headers" in e.problem
    e = error(MINIMAL + "\n[limits]\nheader_timeout = 30\nheader_timeout_max = 20\n")
    assert e.key.startswith("limits") and "header_timeout_max" in e.problem
    e = error(MINIMAL + "\n[limits]\nmax_headers = 0\n")
    assert e.key == "limits.max_headers"


def test_max_body_bytes() -> None:
    """[limits] max_body_bytes: 1 GiB by default, 0 is no limit; negative or not an int: error."""
    assert load_toml_text(MINIMAL).limits.max_body_bytes == 1073741824
    config = load_toml_text(MINIMAL + "\n[limits]\nmax_body_bytes = 0\n")
    assert config.limits.max_body_bytes == 0
    e = error(MINIMAL + "\n[limits]\nmax_body_bytes = -1\n")
    assert e.key == "limits.max_body_bytes"
    assert "must not be negative" in e.problem and "-1" in e.problem
    assert "test.toml" in str(e) and "limits.max_body_bytes" in str(e)
    e = error(MINIMAL + '\n[limits]\nmax_body_bytes = "1M"\n')
    assert e.key == "limits.max_body_bytes"


def test_unrouted_header_edits() -> None:
    """[[unrouted]] takes Header always edits per host; convert writes them back."""
    from twisted_lb.config import UnroutedHeaders, to_toml

    text = (
        MINIMAL
        + """
[[unrouted]]
hosts = ["a.example"]

[[unrouted.response_headers]]
action = "set"
name = "X-Frame-Options"
value = "DENY"
always = true
"""
    )
    config = load_toml_text(text, "test.toml")
    assert config.unrouted == (
        UnroutedHeaders(
            (HeaderEdit("set", "X-Frame-Options", "DENY", always=True),), ("a.example",)
        ),
    )
    assert load_toml_text(to_toml(config), "test.toml") == config
    e = error(text.replace("always = true", "always = false"))
    assert e.key.startswith("unrouted[0]") and "always" in e.problem
