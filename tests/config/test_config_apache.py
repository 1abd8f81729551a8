"""The Apache httpd reader: every directive, every parameter, every error."""

from __future__ import annotations

import os

import pytest

from twisted_lb.access import AccessRule
from twisted_lb.basic_auth import AuthRule
from twisted_lb.config import (
    AdminConfig,
    BackendTLSConfig,
    ConfigError,
    ConfigErrors,
    LBMethodName,
    ListenerConfig,
    MemberState,
    RouteConfig,
    StickySessionConfig,
    TLSConfig,
    read_apache,
)
from twisted_lb.config.apache import ACCEPTED_AND_IGNORED
from twisted_lb.header_edits import HeaderEdit

from .helpers import write

APP = """
<Proxy balancer://app>
    BalancerMember ajp://127.0.0.1:8009 route=n1
</Proxy>
"""


def read(tmp_path, text: str, name: str = "httpd.conf"):
    """Read C{text} as an Apache file; return (config, warnings)."""
    return read_apache(write(tmp_path, name, text))


def error(tmp_path, text: str, name: str = "httpd.conf") -> ConfigError:
    """Read C{text}, expecting a ConfigError; return it."""
    path = write(tmp_path, name, text)
    with pytest.raises(ConfigError) as e:
        read_apache(path)
    return e.value


# -- syntax --------------------------------------------------------------------


def test_unsupported_directive_names_file_line_and_directive(tmp_path) -> None:
    """An unknown directive is an error with the file, the line and the directive's name."""
    e = error(tmp_path, "Listen 8080\n\nFrobnicate On\n")
    assert e.source == str(tmp_path / "httpd.conf")
    assert e.key == "line 3"
    assert e.problem == (
        "directive 'Frobnicate' is not supported by twisted_lb "
        "(see docs/migrating-from-apache.md)"
    )


def test_refused_directive_gives_the_reason(tmp_path) -> None:
    """A directive twisted_lb refuses on purpose says why and what to do."""
    e = error(tmp_path, "Listen 8080\nRewriteRule ^/old /new [CO=a:b:c]\n")
    assert e.key == "line 2"
    assert e.problem.startswith("RewriteRule flag [CO=a:b:c] is not supported")


def test_unsupported_section(tmp_path) -> None:
    """An unsupported section such as <ProxyMatch> is reported by name, line and reason."""
    e = error(tmp_path, "Listen 8080\n<ProxyMatch ^http://a>\n</ProxyMatch>\n")
    assert e.key == "line 2"
    assert "<ProxyMatch> is not supported: regular-expression proxy sections" in e.problem


def test_location_match(tmp_path) -> None:
    """<LocationMatch> (and <Location ~>) naming a path prefix at a segment boundary is that
    <Location>; another expression is refused with what to do; ProxyPass (or ProxyPassMatch)
    inside it is ProxyPassMatch with the section's expression."""
    for regex in ("^/a", "^/(a|b)/", "^/a/$", "\\.php$"):
        e = error(tmp_path, f'Listen 8080\n<LocationMatch "{regex}">\n</LocationMatch>\n')
        assert e.key == "line 2" and "names a path prefix" in e.problem, regex
    config, _ = read(
        tmp_path,
        """
        Listen 8080
        ProxyPass /a http://127.0.0.1:9000/a
        <Location ~ "^/a/private(/|$)">
            Require ip 10.0.0.0/8
        </Location>
        <LocationMatch ^/b/>
            ProxyPassMatch http://127.0.0.1:9000/x
        </LocationMatch>
        <LocationMatch "^/c/(.*)$">
        </LocationMatch>
        """,
    )
    [route] = config.routes
    assert [(r.path, r.allow) for r in route.access] == [("/a/private", ("10.0.0.0/8",))]
    [rule] = config.rules
    assert (rule.pattern, rule.target) == ("^(?=.*?(?:^/b/))(.*)$", "/x$1")


def test_unsupported_directive_inside_proxy(tmp_path) -> None:
    """Access rules twisted_lb cannot check inside <Proxy> are not silently dropped."""
    e = error(
        tmp_path,
        "Listen 80\n<Proxy balancer://app>\n  BalancerMember ajp://h:8009\n"
        "  Require host example.com\n</Proxy>\n",
    )
    assert e.key == "line 4" and "reverse DNS" in e.problem


def test_every_problem_in_one_run(tmp_path) -> None:
    """Five refused lines give five errors at once, each with file, line and directive."""
    path = write(
        tmp_path,
        "httpd.conf",
        """
        Listen 8080
        RewriteRule ^/(.*) http://x/$1 [P,CO=a:b:c]
        <Proxy balancer://app>
            BalancerMember ajp://127.0.0.1:8009 route=n1 frobnicate=2
        </Proxy>
        ProxyPass /app balancer://app
        Frobnicate yes
        ProxyRequests On
        <LocationMatch ^/x>
            ProxyPass http://127.0.0.1:8080
        </LocationMatch>
        """,
    )
    with pytest.raises(ConfigErrors) as info:
        read_apache(path)
    errors = info.value.errors
    assert [(e.source, e.key) for e in errors] == [
        (path, "line 2"),
        (path, "line 4"),
        (path, "line 7"),
        (path, "line 8"),
        (path, "line 9"),
    ]
    names = ["RewriteRule", "BalancerMember", "Frobnicate", "ProxyRequests", "<LocationMatch>"]
    for e, name in zip(errors, names, strict=True):
        assert name in e.problem
    assert str(info.value).count("\n") == 4
    # The first error is also the exception's own, for callers that read one.
    assert (info.value.key, info.value.problem) == ("line 2", errors[0].problem)


def test_errors_in_included_files_name_those_files(tmp_path) -> None:
    """Problems in several included files are all reported, each with its file."""
    a = write(tmp_path, "conf.d/a.conf", "Frobnicate 1\n")
    b = write(tmp_path, "conf.d/b.conf", "ServerName x\nHeader set X-A 1 early\n")
    e = error(tmp_path, "Listen 80\nInclude conf.d/*.conf\nFrobnicate 2\n")
    assert isinstance(e, ConfigErrors)
    assert [(x.source, x.key) for x in e.errors] == [
        (a, "line 1"),
        (b, "line 2"),
        (str(tmp_path / "httpd.conf"), "line 3"),
    ]


def test_accepted_and_ignored_directives(tmp_path) -> None:
    """Lines with no effect on proxying are read; one warning per directive says why."""
    config, warnings = read(
        tmp_path,
        """
        LoadModule proxy_module modules/mod_proxy.so
        ServerName proxy.example.com
        ServerAdmin root@example.com
        DocumentRoot /var/www/html
        ErrorLog logs/error_log
        CustomLog logs/access_log combined
        CustomLog logs/ssl_log "%t %h"
        LogLevel warn
        LogFormat "%h %l %u %t" common
        TransferLog logs/transfer
        NameVirtualHost *:8080
        SetEnvIf User-Agent ".*MSIE.*" nokeepalive
        AddDefaultCharset UTF-8
        PidFile /run/httpd.pid
        User apache
        Group apache
        StartServers 4
        MaxRequestWorkers 400
        SSLSessionCache shmcb:/run/ssl_scache(512000)
        CacheEnable disk /
        CacheRoot /var/cache/httpd
        ServerSignature Off
        ServerTokens Prod
        Options -Indexes
        AllowOverride None
        Mutex file:/run/lock default
        <Directory /var/www>
            Require all denied
        </Directory>
        <FilesMatch "\\.php$">
            SetHandler application/x-httpd-php
        </FilesMatch>
        Listen 8080
        """,
    )
    assert {"loadmodule", "serveradmin", "documentroot", "errorlog"} <= set(ACCEPTED_AND_IGNORED)
    # ServerName names the host of requests that come without a Host header.
    assert config.listeners == (ListenerConfig("tcp:8080", server_name="proxy.example.com"),)
    assert len(warnings) == 26
    assert warnings[0] == (
        "line 1: LoadModule is accepted and has no effect on proxying: twisted_lb has no "
        "loadable modules; what it supports is built in"
    )
    assert any(w.startswith("line 6 and 1 more line: CustomLog is accepted") for w in warnings)
    assert any(w.startswith("line 27: <Directory> is accepted") for w in warnings)


def test_accepted_directives_loaded_twice_warn_once(tmp_path) -> None:
    """Three LogFormat lines give one warning that counts them."""
    _, warnings = read(tmp_path, "Listen 80\nLogFormat a\nLogFormat b\nLogFormat c\n")
    assert warnings == [
        "line 2 and 2 more lines: LogFormat is accepted and has no effect on proxying: "
        "twisted_lb writes its own logs (access_log and log_format in the native file)"
    ]


def test_lines_with_a_proxy_meaning_are_kept(tmp_path) -> None:
    """TraceEnable, ProxyAddHeaders, LimitRequestBody and ProxyVia Off keep their meaning."""
    config, _ = read(
        tmp_path,
        "Listen 80\nTraceEnable Off\nProxyAddHeaders Off\nLimitRequestBody 1048576\n"
        "ProxyVia Off\n",
    )
    assert config.allow_trace is False
    assert config.x_forwarded is False
    assert config.limits.max_body_bytes == 1048576
    config, _ = read(tmp_path, "Listen 80\n")
    assert (config.allow_trace, config.x_forwarded) == (True, True)
    e = error(tmp_path, "Listen 80\nProxyVia Sometimes\n")
    assert "ProxyVia must be Off, On, Full or Block" in e.problem
    e = error(
        tmp_path,
        "Listen 80\nLimitRequestBody 10\n<VirtualHost *:80>\nLimitRequestBody 20\n"
        "</VirtualHost>\n",
    )
    assert e.key == "line 4" and "one value for the whole proxy" in e.problem


def test_access_rules_for_both_apache_versions(tmp_path) -> None:
    """Require next to Order/Allow that lets everyone in (files for 2.2 and 2.4) is one rule."""
    config, _ = read(
        tmp_path,
        "Listen 80\n<Proxy balancer://app>\nBalancerMember ajp://h:1\nRequire ip 10.0.0.0/8\n"
        "Order allow,deny\nAllow from all\n</Proxy>\nProxyPass / balancer://app/\n",
    )
    assert config.routes[0].access == (AccessRule("/", "require", ("10.0.0.0/8",)),)
    config, _ = read(
        tmp_path,
        "Listen 80\n<Proxy balancer://app>\nBalancerMember ajp://h:1\nRequire all granted\n"
        "Order allow,deny\nAllow from all\n</Proxy>\nProxyPass / balancer://app/\n",
    )
    assert config.routes[0].access[0].lets_everyone_in


def test_server_name_per_virtual_host(tmp_path) -> None:
    """
    ServerName becomes the listener's server_name (the host of requests
    without Host); a virtual host without one inherits the main server's.
    """
    config, _ = read(
        tmp_path,
        """
        ServerName main.example
        <VirtualHost *:8080>
          ServerName https://www.example.com:8443
        </VirtualHost>
        <VirtualHost *:8081>
        </VirtualHost>
        """,
    )
    assert [(lst.endpoint, lst.server_name) for lst in config.listeners] == [
        ("tcp:8080", "www.example.com:8443"),
        ("tcp:8081", "main.example"),
    ]


def test_ssl_verify_client(tmp_path) -> None:
    """SSLVerifyClient and SSLCACertificateFile ask clients for certificates, as in Apache."""
    config, _ = read(
        tmp_path,
        """
        <VirtualHost *:8443>
          SSLEngine on
          SSLCertificateFile /etc/ssl/c.pem
          SSLVerifyClient require
          SSLCACertificateFile /etc/ssl/ca.pem
        </VirtualHost>
        """,
    )
    tls = config.listeners[0].tls
    assert tls is not None
    assert (tls.client_certificates, tls.client_ca) == ("require", "/etc/ssl/ca.pem")
    e = error(
        tmp_path,
        "<VirtualHost *:8443>\nSSLEngine on\nSSLCertificateFile /c.pem\nSSLVerifyClient optional\n"
        "</VirtualHost>\n",
    )
    assert e.key == "line 4" and "client_ca" in e.problem
    e = error(
        tmp_path,
        "<VirtualHost *:8443>\nSSLEngine on\nSSLCertificateFile /c.pem\nSSLVerifyClient maybe\n"
        "</VirtualHost>\n",
    )
    assert e.key == "line 4"


def test_server_name_that_is_no_host(tmp_path) -> None:
    e = error(tmp_path, "Listen 8080\n<VirtualHost *:8080>\nServerName a/b\n</VirtualHost>\n")
    assert e.key == "line 3" and "not a host name" in e.problem


def test_case_insensitive_names_comments_and_ifmodule(tmp_path) -> None:
    """Directive and section names ignore case; # lines are comments; <IfModule> is read."""
    config, _ = read(
        tmp_path,
        """
        # a comment
        listen 8080
        <ifmodule mod_proxy.c>
            <PROXY balancer://App>
                balancermember ajp://127.0.0.1:8009 ROUTE=n1
            </proxy>
            PROXYPASS /app balancer://app
        </IfModule>
        """,
    )
    assert config.balancers[0].name == "app"
    assert config.balancers[0].members[0].route == "n1"
    assert config.routes == (RouteConfig("/app", "app", ""),)


def test_continuation_lines(tmp_path) -> None:
    """A backslash at the end of a line continues the directive on the next line."""
    config, _ = read(
        tmp_path,
        """
        Listen 8080
        <Proxy balancer://app>
            BalancerMember ajp://127.0.0.1:8009 \\
                route=n1 \\
                loadfactor=5
        </Proxy>
        ProxyPass /app balancer://app
        """,
    )
    member = config.balancers[0].members[0]
    assert (member.route, member.loadfactor) == ("n1", 5.0)


def test_continuation_keeps_the_first_line_number(tmp_path) -> None:
    """Errors in a continued directive name its first line."""
    e = error(tmp_path, "Listen 8080\nFoo \\\n  bar\nBaz\n")
    assert e.key == "line 2"


def test_quoted_arguments(tmp_path) -> None:
    """Double- and single-quoted arguments keep spaces; \\" and \\\\ are escapes."""
    config, _ = read(
        tmp_path,
        r"""
        Listen 8080
        <Proxy "balancer://app">
            BalancerMember "ajp://127.0.0.1:8009" "secret=s3 \"cr\\et" 'route=n 1'
        </Proxy>
        ProxyPass "/my app" 'balancer://app/x'
        """,
    )
    member = config.balancers[0].members[0]
    assert member.secret == 's3 "cr\\et'
    assert member.route == "n 1"
    assert config.routes[0] == RouteConfig("/my app", "app", "/x")


def test_quotes_as_httpd_reads_them(tmp_path) -> None:
    """An unclosed quote runs to the end of the line; a quote inside a word is a character."""
    config, _ = read(
        tmp_path,
        """
        Listen 8080
        <Proxy balancer://app>
            BalancerMember ajp://127.0.0.1:8009 route=a"b "secret=open to end
        </Proxy>
        ProxyPass /app balancer://app
        """,
    )
    member = config.balancers[0].members[0]
    assert (member.route, member.secret) == ('a"b', "open to end")


def test_conditional_section_open_at_the_end(tmp_path) -> None:
    """An <IfModule> left open at the end of a file is closed there, with a warning."""
    inc = write(tmp_path, "site.conf", "<IfModule mod_proxy.c>\nProxyPass /app balancer://app\n")
    config, warnings = read(tmp_path, f"Listen 80\n{APP}Include {inc}\n")
    assert config.routes[0].path == "/app"
    assert f"{inc} line 1: <IfModule> is not closed before the end of the file" in warnings[0]
    e = error(tmp_path, "Listen 80\n<IfModule x>\n<Location /a>\n")
    assert "<Location> is never closed" in e.problem


def test_ifmodule_follows_loadmodule(tmp_path) -> None:
    """With LoadModule lines, <IfModule> holds for the loaded (and built-in) modules only."""
    config, warnings = read(
        tmp_path,
        """
        LoadModule proxy_module modules/mod_proxy.so
        <IfModule mod_proxy.c>
            Listen 80
        </IfModule>
        <IfModule ssl_module>
            Listen 443
        </IfModule>
        <IfModule !mod_ssl.c>
            Listen 81
        </IfModule>
        <IfModule log_config_module>
            Listen 82
        </IfModule>
        """,
    )
    assert [x.endpoint for x in config.listeners] == ["tcp:80", "tcp:81", "tcp:82"]
    assert any("<IfModule ssl_module> is skipped" in w for w in warnings)


def test_define_ifdefine_and_variables(tmp_path, monkeypatch) -> None:
    """Define and environment variables fill ${NAME}; <IfDefine> and <IfVersion> are evaluated."""
    monkeypatch.setenv("LB_TEST_PORT", "8081")
    config, _ = read(
        tmp_path,
        """
        Define HTTP_PORT 8080
        Listen ${HTTP_PORT}
        Listen ${LB_TEST_PORT}
        <IfDefine HTTP_PORT>
            Listen 8082
        </IfDefine>
        <IfDefine !HTTP_PORT>
            Listen 8083
        </IfDefine>
        <IfVersion >= 2.4>
            Listen 8084
        </IfVersion>
        <IfVersion < 2.2>
            Listen 8085
        </IfVersion>
        """,
    )
    assert [x.endpoint for x in config.listeners] == [
        "tcp:8080",
        "tcp:8081",
        "tcp:8082",
        "tcp:8084",
    ]


def test_unclosed_and_mismatched_sections(tmp_path) -> None:
    """A section never closed, or closed by the wrong tag, is an error with the line."""
    e = error(tmp_path, "Listen 80\n<Proxy balancer://a>\n  BalancerMember ajp://h:1\n")
    assert (e.key, e.problem) == ("line 2", "<Proxy> is never closed (add </Proxy>)")
    e = error(tmp_path, "<VirtualHost *:80>\n</Proxy>\n")
    assert e.key == "line 2" and "does not close <VirtualHost>" in e.problem
    e = error(tmp_path, "</Location>\n")
    assert e.key == "line 1"


def test_include_relative_to_including_file(tmp_path) -> None:
    """Include and IncludeOptional take paths and globs relative to the including file."""
    write(tmp_path, "conf/balancers/a.conf", APP)
    write(
        tmp_path,
        "conf/balancers/b.conf",
        "<Proxy balancer://b>\n  BalancerMember http://127.0.0.1:8080\n</Proxy>\n",
    )
    write(tmp_path, "conf/routes.conf", "ProxyPass /a balancer://app\nProxyPass /b balancer://b\n")
    main = write(
        tmp_path,
        "conf/httpd.conf",
        """
        Listen 8080
        Include balancers/*.conf
        Include routes.conf
        IncludeOptional missing/*.conf
        IncludeOptional nothing-here.conf
        """,
    )
    os.chdir(tmp_path)  # the working directory must not matter
    config, _ = read_apache(main)
    assert [b.name for b in config.balancers] == ["app", "b"]
    assert [r.path for r in config.routes] == ["/a", "/b"]


def test_include_missing_file(tmp_path) -> None:
    """Include of a missing file (or a glob matching nothing) is an error naming the line."""
    e = error(tmp_path, "Listen 80\nInclude nope.conf\n")
    assert e.key == "line 2" and "no such file" in e.problem
    e = error(tmp_path, "Listen 80\nInclude nope/*.conf\n")
    assert e.key == "line 2" and "matches no file" in e.problem


def test_error_in_included_file_names_that_file(tmp_path) -> None:
    """An error inside an included file names the included file and its line."""
    inc = write(tmp_path, "inc.conf", "ServerName x\nBogusDirective x\n")
    e = error(tmp_path, "Listen 80\nInclude inc.conf\n")
    assert (e.source, e.key) == (inc, "line 2")


def test_include_loop(tmp_path) -> None:
    """A file that includes itself is an error, not a hang."""
    e = error(tmp_path, "Include httpd.conf\n")
    assert "loop" in e.problem


def test_missing_file(tmp_path) -> None:
    """A configuration file that does not exist is a ConfigError naming it."""
    path = str(tmp_path / "absent.conf")
    with pytest.raises(ConfigError) as e:
        read_apache(path)
    assert e.value.source == path and "cannot be read" in e.value.problem


# -- listeners -------------------------------------------------------------------


def test_listen_forms(tmp_path) -> None:
    """Listen PORT, ADDR:PORT and [IPv6]:PORT become tcp/tcp6 endpoints."""
    config, _ = read(
        tmp_path,
        "Listen 8080\nListen 127.0.0.1:8081\nListen [::1]:8082\nListen 8443 https\n",
    )
    assert [listener.endpoint for listener in config.listeners] == [
        "tcp:8080",
        "tcp:8081:interface=127.0.0.1",
        "tcp6:8082:interface=\\:\\:1",
        "tcp:8443",
    ]


def test_virtualhost_listeners(tmp_path) -> None:
    """Each <VirtualHost> address becomes a listener; an address gives the interface."""
    config, _ = read(
        tmp_path,
        """
        Listen 127.0.0.1:9090
        <VirtualHost 127.0.0.1:8080>
        </VirtualHost>
        <VirtualHost *:9090>
        </VirtualHost>
        <VirtualHost _default_:7070>
        </VirtualHost>
        """,
    )
    assert [listener.endpoint for listener in config.listeners] == [
        "tcp:8080:interface=127.0.0.1",
        "tcp:9090:interface=127.0.0.1",
        "tcp:7070",
    ]


def test_name_based_virtual_hosts(tmp_path) -> None:
    """
    Several <VirtualHost> on one port share one socket and are chosen by
    name; the first is the default for other names.
    """
    config, _ = read(
        tmp_path,
        """
        Listen 80
        <VirtualHost *:80>
            ServerName www.example.com
            ProxyPass / http://127.0.0.1:9001/
        </VirtualHost>
        <VirtualHost *:80>
            ServerName API.example.com:80
            ServerAlias *.api.example.com api
            ProxyPass / http://127.0.0.1:9002/
            ProxyPass /v1 http://127.0.0.1:9003/
        </VirtualHost>
        """,
    )
    # The first virtual host on the port is the default: its name serves
    # requests without a Host.
    assert config.listeners == (ListenerConfig("tcp:80", server_name="www.example.com"),)
    routes = {(r.path, r.hosts): r.balancer for r in config.routes}
    assert routes == {
        ("/", ("_default_", "www.example.com")): "http-127.0.0.1-9001",
        ("/", ("api.example.com", "*.api.example.com", "api")): "http-127.0.0.1-9002",
        ("/v1", ("api.example.com", "*.api.example.com", "api")): "http-127.0.0.1-9003",
    }


def test_localhost_next_to_default_virtual_host_is_one_socket(tmp_path) -> None:
    """<VirtualHost localhost:443> next to <VirtualHost _default_:443>: one socket on 443."""
    cert = write(tmp_path, "cert.pem", "x")
    config, _ = read(
        tmp_path,
        f"""
        Listen 443
        <VirtualHost _default_:443>
            SSLEngine on
            SSLCertificateFile {cert}
            ProxyPass / http://127.0.0.1:9001/
        </VirtualHost>
        <VirtualHost localhost:443>
            ServerName localhost
            SSLEngine on
            SSLCertificateFile {cert}
            ProxyPass / http://127.0.0.1:9002/
        </VirtualHost>
        """,
    )
    assert [listener.endpoint for listener in config.listeners] == ["tcp:443"]


def test_virtual_hosts_on_one_port_that_cannot_share_it(tmp_path) -> None:
    """Other certificates, redirect next to proxy, or no name at all are errors with the reason."""
    a = write(tmp_path, "a.pem", "x")
    b = write(tmp_path, "b.pem", "x")
    e = error(
        tmp_path,
        f"<VirtualHost *:443>\nServerName a\nSSLEngine on\nSSLCertificateFile {a}\n"
        "ProxyPass / http://h:1/\n</VirtualHost>\n"
        f"<VirtualHost *:443>\nServerName b\nSSLEngine on\nSSLCertificateFile {b}\n"
        "ProxyPass / http://h:2/\n</VirtualHost>\n",
    )
    assert e.key == "line 7" and "no SNI" in e.problem
    e = error(
        tmp_path,
        "<VirtualHost *:80>\nServerName a\nRedirect / https://a/\n</VirtualHost>\n"
        "<VirtualHost *:80>\nServerName b\nProxyPass / http://h:2/\n</VirtualHost>\n",
    )
    assert e.key == "line 5" and "only redirects" in e.problem
    e = error(
        tmp_path,
        "<VirtualHost *:80>\nServerName a\nProxyPass / http://h:1/\n</VirtualHost>\n"
        "<VirtualHost *:80>\nProxyPass / http://h:2/\n</VirtualHost>\n",
    )
    assert e.key == "line 5" and "no ServerName" in e.problem


def test_no_listener(tmp_path) -> None:
    """A file without Listen or <VirtualHost> is an error."""
    e = error(tmp_path, APP)
    assert "no listener" in e.problem


def test_ssl_listener(tmp_path) -> None:
    """SSLEngine on with certificate, key and chain gives an HTTPS listener; paths are resolved."""
    config, _ = read(
        tmp_path,
        """
        <VirtualHost *:8443>
            SSLEngine on
            SSLCertificateFile tls/cert.pem
            SSLCertificateKeyFile /etc/key.pem
            SSLCertificateChainFile "tls/chain.pem"
        </VirtualHost>
        """,
    )
    assert config.listeners == (
        ListenerConfig(
            "tcp:8443",
            tls=TLSConfig(
                certificate=str(tmp_path / "tls/cert.pem"),
                key="/etc/key.pem",
                chain=str(tmp_path / "tls/chain.pem"),
            ),
            # No Protocols h2: Apache speaks HTTP/1.1 only.
            http2=False,
        ),
    )


def test_ssl_key_defaults_to_certificate(tmp_path) -> None:
    """Without SSLCertificateKeyFile the key is read from the certificate file, as Apache does."""
    config, _ = read(tmp_path, "Listen 443\nSSLEngine On\nSSLCertificateFile /c.pem\n")
    assert config.listeners[0].tls == TLSConfig("/c.pem", "/c.pem")


def test_ssl_engine_without_certificate(tmp_path) -> None:
    """SSLEngine on without a certificate is an error on the SSLEngine line."""
    e = error(tmp_path, "<VirtualHost *:443>\n  SSLEngine on\n</VirtualHost>\n")
    assert e.key == "line 2"


def test_ssl_engine_off(tmp_path) -> None:
    """SSLEngine off (the default) serves plain HTTP even with a certificate configured."""
    config, _ = read(tmp_path, "Listen 80\nSSLEngine off\nSSLCertificateFile /c.pem\n")
    assert config.listeners[0].tls is None


# -- Redirect ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, expected",
    [("", 302), ("permanent", 301), ("temp", 302), ("seeother", 303), ("301", 301), ("308", 308)],
)
def test_redirect_listener(tmp_path, status: str, expected: int) -> None:
    """A virtual host with only Redirect / URL becomes a redirect listener with Apache's status."""
    config, _ = read(
        tmp_path,
        f"<VirtualHost *:80>\n  Redirect {status} / https://example.com/\n</VirtualHost>\n",
    )
    assert config.listeners == (
        ListenerConfig("tcp:80", redirect="https://example.com", redirect_status=expected),
    )


def test_redirect_rules(tmp_path) -> None:
    """
    Redirects that do not cover a whole site become rules before routing;
    one shadowed by a ProxyPass is not used, as in Apache.
    """
    config, warnings = read(
        tmp_path,
        APP
        + """<VirtualHost *:80>
 Redirect gone /old
 Redirect /moved https://h/new
 RedirectPermanent /perm /elsewhere/
 RedirectMatch 301 ^/(.*)\\.php$ /$1
 ProxyPass /a balancer://app
 Redirect /a/b https://h/b
 <Location /loc>
  Redirect 307 https://h/loc
 </Location>
</VirtualHost>
""",
    )
    rules = [(r.pattern, r.target, r.status, r.prefix) for r in config.rules]
    assert rules == [
        ("^/(.*)\\.php$", "/$1", 301, False),
        ("/loc", "https://h/loc", 307, True),
        ("/old", "-", 410, True),
        ("/moved", "https://h/new", 302, True),
        ("/perm", "/elsewhere/", 301, True),
    ]
    assert any("Redirect /a/b is not used: ProxyPass /a covers it" in w for w in warnings)
    e = error(tmp_path, "<VirtualHost *:80>\n Redirect / relative/\n</VirtualHost>\n")
    assert "must be a URL or start with '/'" in e.problem
    e = error(tmp_path, "<VirtualHost *:80>\n Redirect 200 / https://h/\n</VirtualHost>\n")
    assert "status 200 is not supported" in e.problem


def test_redirect_consistent_and_shadowed_rules(tmp_path) -> None:
    """Later Redirect rules that agree are fine; ones that differ are warned about."""
    config, warnings = read(
        tmp_path,
        """
        <VirtualHost *:80>
            Redirect / https://h/
            Redirect /xtam/ https://h/xtam/
            Redirect /other/ https://elsewhere/
        </VirtualHost>
        """,
    )
    assert config.listeners[0].redirect == "https://h"
    assert len(warnings) == 1 and "line 4" in warnings[0] and "shadowed" in warnings[0]


# -- backend TLS --------------------------------------------------------------------


HTTPS_APP = """
Listen 80
{settings}
<Proxy balancer://app>
    BalancerMember https://127.0.0.1:8443
</Proxy>
ProxyPass / balancer://app/
"""


@pytest.mark.parametrize(
    "settings, verify",
    [
        ("SSLProxyCheckPeerCN off", False),
        ("SSLProxyCheckPeerName off", False),
        ("SSLProxyVerify none", False),
        ("SSLProxyVerify optional_no_ca", False),
        ("SSLProxyVerify require", True),
        ("SSLProxyVerify require\nSSLProxyCheckPeerName on", True),
    ],
)
def test_backend_verify_mapping(tmp_path, settings: str, verify: bool) -> None:
    """verify is off when Apache's settings switch a check off explicitly."""
    config, warnings = read(tmp_path, HTTPS_APP.format(settings="SSLProxyEngine on\n" + settings))
    assert config.balancers[0].members[0].tls.verify is verify
    assert warnings == []


def test_backend_verify_default_warns(tmp_path) -> None:
    """With no verification directive twisted_lb verifies and says Apache would not have."""
    config, warnings = read(tmp_path, HTTPS_APP.format(settings="SSLProxyEngine on"))
    assert config.balancers[0].members[0].tls.verify is True
    assert len(warnings) == 1
    assert "Apache would not have verified" in warnings[0] and "line 4" in warnings[0]


def test_backend_ca_and_client_certificate(tmp_path) -> None:
    """SSLProxyCACertificateFile and SSLProxyMachineCertificateFile are resolved and used."""
    config, _ = read(
        tmp_path,
        HTTPS_APP.format(
            settings="SSLProxyEngine on\nSSLProxyVerify require\n"
            "SSLProxyCACertificateFile ca.pem\nSSLProxyMachineCertificateFile /etc/client.pem"
        ),
    )
    assert config.balancers[0].members[0].tls == BackendTLSConfig(
        verify=True, ca_file=str(tmp_path / "ca.pem"), client_certificate="/etc/client.pem"
    )


def test_backend_tls_settings_inside_proxy(tmp_path) -> None:
    """SSLProxy* inside <Proxy> apply to that balancer's members."""
    config, _ = read(
        tmp_path,
        """
        Listen 80
        SSLProxyEngine on
        <Proxy balancer://app>
            SSLProxyVerify none
            BalancerMember https://127.0.0.1:8443
        </Proxy>
        ProxyPass / balancer://app/
        """,
    )
    assert config.balancers[0].members[0].tls.verify is False


def test_backend_tls_without_ssl_proxy_engine_warns(tmp_path) -> None:
    """An https:// member without SSLProxyEngine On is warned about."""
    _, warnings = read(tmp_path, HTTPS_APP.format(settings="SSLProxyVerify none"))
    assert any("SSLProxyEngine" in w for w in warnings)


# -- proxy directives ----------------------------------------------------------------


def test_proxy_requests_on_is_an_error(tmp_path) -> None:
    """ProxyRequests On is refused: twisted_lb is never a forward proxy."""
    e = error(tmp_path, "Listen 80\nProxyRequests On\n")
    assert e.key == "line 2"
    assert "never a forward proxy" in e.problem


def test_proxy_requests_off(tmp_path) -> None:
    """ProxyRequests Off is accepted."""
    config, _ = read(tmp_path, "Listen 80\nProxyRequests Off\n")
    assert config.routes == ()


def test_preserve_host_and_timeout(tmp_path) -> None:
    """ProxyPreserveHost sets preserve_host; ProxyTimeout sets the default member timeout."""
    config, _ = read(
        tmp_path,
        APP
        + """
        <Proxy balancer://two>
            BalancerMember http://127.0.0.1:8080 timeout=7
        </Proxy>
        Listen 80
        ProxyPreserveHost On
        ProxyTimeout 42
        ProxyPass /a balancer://app
        <Location /b>
            ProxyPreserveHost Off
            ProxyPass balancer://two
        </Location>
        """,
    )
    assert config.timeout == 42.0
    assert config.balancer("app").members[0].timeout == 42.0
    assert config.balancer("two").members[0].timeout == 7.0
    assert config.routes == (
        RouteConfig("/a", "app", "", preserve_host=True),
        RouteConfig("/b", "two", "", preserve_host=False),
    )


def test_timeout_directive(tmp_path) -> None:
    """Timeout is ProxyTimeout's default, as in Apache; ProxyTimeout wins."""
    config, _ = read(tmp_path, "Listen 80\nTimeout 60\n" + APP)
    assert config.timeout == 60.0 and config.balancers[0].members[0].timeout == 60.0
    config, _ = read(tmp_path, "Listen 80\nProxyTimeout 30\nTimeout 60\n" + APP)
    assert config.timeout == 30.0


def test_proxypass_balancer_parameters(tmp_path) -> None:
    """ProxyPass parameters for a balancer URL configure the balancer."""
    config, warnings = read(
        tmp_path,
        APP + "Listen 80\nProxyPass /a balancer://app/ stickysession=SID nofailover=On "
        "maxattempts=3 lbmethod=bybusyness\n",
    )
    balancer = config.balancers[0]
    assert balancer.sticky == StickySessionConfig(("SID",), ("SID",), ".")
    assert balancer.nofailover is True
    assert balancer.maxattempts == 3
    assert balancer.lbmethod is LBMethodName.BYBUSYNESS
    assert config.routes == (RouteConfig("/a", "app", "/"),)
    assert warnings == []


def test_proxypass_balancer_timeout_warns(tmp_path) -> None:
    """timeout= on a balancer (Apache: wait for a free member) is warned about, not applied."""
    config, warnings = read(tmp_path, APP + "Listen 80\nProxyPass /a balancer://app timeout=5\n")
    assert config.balancers[0].members[0].timeout == 300.0
    assert len(warnings) == 1 and "free member" in warnings[0] and "line 5" in warnings[0]


@pytest.mark.parametrize("param", ["connectiontimeout=1", "retry=5"])
def test_proxypass_member_parameter_on_balancer_is_an_error(tmp_path, param: str) -> None:
    """Member parameters on a balancer ProxyPass are errors, as they are in Apache."""
    e = error(tmp_path, APP + f"Listen 80\nProxyPass /a balancer://app {param}\n")
    assert e.key == "line 5" and "member parameter" in e.problem


def test_proxypass_direct_url(tmp_path) -> None:
    """A direct URL makes an implicit one-member balancer; its parameters go to the member."""
    config, _ = read(
        tmp_path,
        """
        Listen 80
        ProxyPass /api http://127.0.0.1:8080/v1 timeout=10 connectiontimeout=500ms retry=0
        ProxyPass /api2 http://127.0.0.1:8080/v2 timeout=10 connectiontimeout=500ms retry=0
        ProxyPass /ws ws://127.0.0.1:8080/ws
        """,
    )
    (api, ws) = config.balancers
    assert api.name == "http-127.0.0.1-8080"
    assert api.sticky is None and len(api.members) == 1
    member = api.members[0]
    assert (member.url, member.timeout, member.connectiontimeout, member.retry) == (
        "http://127.0.0.1:8080",
        10.0,
        0.5,
        0.0,
    )
    assert ws.name == "ws-127.0.0.1-8080" and ws.websocket
    assert config.routes == (
        RouteConfig("/api", "http-127.0.0.1-8080", "/v1"),
        RouteConfig("/api2", "http-127.0.0.1-8080", "/v2"),
        RouteConfig("/ws", "ws-127.0.0.1-8080", "/ws"),
    )


def test_proxypass_direct_url_distinct_parameters(tmp_path) -> None:
    """Two direct mappings to one member with different parameters get two balancers."""
    config, _ = read(
        tmp_path,
        "Listen 80\nProxyPass /a http://h:1/ timeout=1\nProxyPass /b http://h:1/ timeout=2\n",
    )
    assert [b.name for b in config.balancers] == ["http-h-1", "http-h-1-2"]


def test_proxypass_direct_url_errors(tmp_path) -> None:
    """Balancer parameters, unknown schemes and flags on a direct URL are errors."""
    e = error(tmp_path, "Listen 80\nProxyPass /a http://h:1 stickysession=X\n")
    assert "balancer parameter" in e.problem and e.key == "line 2"
    e = error(tmp_path, "Listen 80\nProxyPass /a fcgi://h:1\n")
    assert "scheme 'fcgi'" in e.problem
    e = error(tmp_path, "Listen 80\nProxyPass /a http://h:1 noquery\n")
    assert "noquery" in e.problem and "not supported" in e.problem


def test_proxypass_exclusion(tmp_path) -> None:
    """ProxyPass /path ! is an exclusion route (balancer None)."""
    config, _ = read(
        tmp_path, APP + "Listen 80\nProxyPass /static !\nProxyPass / balancer://app/\n"
    )
    assert config.routes[0] == RouteConfig("/static", None, "")


def test_proxypass_in_location(tmp_path) -> None:
    """ProxyPass inside <Location /path> takes the location as its path."""
    config, _ = read(
        tmp_path,
        APP + "Listen 80\n<Location /share>\n  ProxyPass balancer://app/share\n"
        "  ProxyPassReverse balancer://app/share\n</Location>\n",
    )
    assert config.routes == (RouteConfig("/share", "app", "/share"),)
    e = error(
        tmp_path, APP + "Listen 80\n<Location /x>\n  ProxyPass /x balancer://app\n</Location>\n"
    )
    assert "takes the URL only" in e.problem


def test_proxypass_unknown_balancer(tmp_path) -> None:
    """A ProxyPass naming an undefined balancer is an error on its line."""
    e = error(tmp_path, "Listen 80\n\nProxyPass / balancer://nope/\n")
    assert e.key == "line 3" and "balancer://nope" in e.problem


def test_proxypass_same_path_twice(tmp_path) -> None:
    """Mapping one path twice in one host is an error naming both lines."""
    e = error(tmp_path, APP + "Listen 80\nProxyPass /a balancer://app\nProxyPass /a !\n")
    assert e.key == "line 6" and "line 5" in e.problem


def test_same_mapping_in_two_virtual_hosts(tmp_path) -> None:
    """The same ProxyPass in two virtual hosts is one route; a different one is an error."""
    body = APP + "<VirtualHost *:80>\nProxyPass / balancer://app/\n</VirtualHost>\n"
    config, _ = read(
        tmp_path, body + "<VirtualHost *:81>\nProxyPass / balancer://app/\n</VirtualHost>\n"
    )
    assert config.routes == (RouteConfig("/", "app", "/"),)
    assert len(config.listeners) == 2
    e = error(tmp_path, body + "<VirtualHost *:81>\nProxyPass / !\n</VirtualHost>\n")
    assert "every listener" in e.problem


def test_shadowing_warning(tmp_path) -> None:
    """A shorter prefix before a longer one it covers is warned about with both lines."""
    _, warnings = read(
        tmp_path,
        APP + "Listen 80\nProxyPass / balancer://app/\nProxyPass /static !\n"
        "ProxyPass /statics !\nProxyPass /other !\n",
    )
    assert warnings == [
        "Apache checks ProxyPass rules in file order, so /static (line 6) is shadowed by / "
        "(line 5) there and never used; twisted_lb picks the longest prefix, so it is used here",
        "Apache checks ProxyPass rules in file order, so /statics (line 7) is shadowed by / "
        "(line 5) there and never used; twisted_lb picks the longest prefix, so it is used here",
        "Apache checks ProxyPass rules in file order, so /other (line 8) is shadowed by / "
        "(line 5) there and never used; twisted_lb picks the longest prefix, so it is used here",
    ]


def test_no_shadowing_when_longest_first(tmp_path) -> None:
    """Rules ordered longest first, or on path-segment boundaries, give no warning."""
    _, warnings = read(
        tmp_path,
        APP + "Listen 80\nProxyPass /a/b !\nProxyPass /a balancer://app\nProxyPass /ab !\n",
    )
    assert warnings == []


def test_proxypassreverse_mismatch_warns(tmp_path) -> None:
    """ProxyPassReverse that matches no ProxyPass is recorded as a warning."""
    _, warnings = read(
        tmp_path,
        APP + "Listen 80\nProxyPass /a balancer://app\nProxyPassReverse /a balancer://other\n"
        "ProxyPassReverse /zzz balancer://app\nProxyPassReverse /a balancer://APP\n",
    )
    assert len(warnings) == 2
    assert warnings[0].startswith("line 6: ProxyPassReverse /a balancer://other does not match")
    assert warnings[1].startswith("line 7: ProxyPassReverse /zzz balancer://app matches no")


def test_cookie_path_and_domain(tmp_path) -> None:
    """ProxyPassReverseCookiePath/Domain are kept on the routes they apply to."""
    config, _ = read(
        tmp_path,
        APP
        + """
        Listen 80
        ProxyPassReverseCookieDomain backend.internal example.com
        ProxyPass /a balancer://app
        ProxyPass /static !
        <Location /b>
            ProxyPass balancer://app/b
            ProxyPassReverseCookiePath /b-internal /b
        </Location>
        """,
    )
    a, static, b = config.routes
    assert a.cookie_domain == (("backend.internal", "example.com"),) and a.cookie_path == ()
    assert static.cookie_domain == ()
    assert b.cookie_path == (("/b-internal", "/b"),)
    assert b.cookie_domain == (("backend.internal", "example.com"),)


# -- balancers ---------------------------------------------------------------------


def test_every_balancer_member_parameter(tmp_path) -> None:
    """Every supported BalancerMember parameter reaches the model."""
    config, _ = read(
        tmp_path,
        """
        Listen 80
        <Proxy balancer://app>
            BalancerMember ajp://127.0.0.1:8009/app route=n1 loadfactor=2.5 lbset=1 retry=30 \\
                timeout=20 connectiontimeout=250ms ping=500ms secret=s3cr3t status=+H max=10 \\
                ttl=15 iobuffersize=16384
            BalancerMember ajp://127.0.0.1:8010 connectiontimeout=3 ping=1
        </Proxy>
        ProxyPass / balancer://app/
        """,
    )
    m, m2 = config.balancers[0].members
    assert (m.url, m.route, m.loadfactor, m.lbset, m.retry, m.timeout) == (
        "ajp://127.0.0.1:8009/app",
        "n1",
        2.5,
        1,
        30.0,
        20.0,
    )
    assert (m.connectiontimeout, m.ping, m.secret, m.status) == (
        0.25,
        0.5,
        "s3cr3t",
        MemberState.STANDBY,
    )
    assert (m.max, m.ttl, m.packet_size) == (10, 15.0, 16384)
    assert (m2.connectiontimeout, m2.ping) == (3.0, 1.0)


@pytest.mark.parametrize(
    "status, state",
    [
        ("+H", MemberState.STANDBY),
        ("H", MemberState.STANDBY),
        ("+N", MemberState.DRAINING),
        ("+D", MemberState.DISABLED),
        ("+S", MemberState.DISABLED),
        ("-D", MemberState.ACTIVE),
        ("+D-D", MemberState.ACTIVE),
        ("+H+D", MemberState.DISABLED),
        ("+HN", MemberState.DRAINING),
        ("-E", MemberState.ACTIVE),
        ("-I", MemberState.ACTIVE),
    ],
)
def test_member_status(tmp_path, status: str, state: MemberState) -> None:
    """status= flags map to the model's states (D/S > N > H; -X clears X)."""
    config, _ = read(
        tmp_path,
        f"Listen 80\n<Proxy balancer://app>\nBalancerMember ajp://h:1 status={status}\n</Proxy>\n",
    )
    assert config.balancers[0].members[0].status is state


@pytest.mark.parametrize("flag", ["+E", "+I", "+R", "+C", "+X"])
def test_member_status_unsupported(tmp_path, flag: str) -> None:
    """+E, +I, +R, +C and unknown flags are errors naming the line."""
    e = error(
        tmp_path,
        f"Listen 80\n<Proxy balancer://app>\nBalancerMember ajp://h:1 status={flag}\n</Proxy>\n",
    )
    assert e.key == "line 3" and "status=" in e.problem


def test_member_errors(tmp_path) -> None:
    """Bad numbers, unknown parameters and model violations are errors on the member's line."""
    head = "Listen 80\n<Proxy balancer://app>\n"
    e = error(tmp_path, head + "BalancerMember ajp://h:1 loadfactor=101\n</Proxy>\n")
    assert e.key == "line 3" and "loadfactor must be between 1 and 100" in e.problem
    e = error(tmp_path, head + "BalancerMember ajp://h:1 loadfactor=many\n</Proxy>\n")
    assert "loadfactor must be a number" in e.problem
    e = error(tmp_path, head + "BalancerMember ajp://h:1 redirect=n2\n</Proxy>\n")
    assert "parameter 'redirect' is not supported" in e.problem
    e = error(tmp_path, head + "BalancerMember ajp://h:1 iobuffersize=1024\n</Proxy>\n")
    assert "packet_size" in e.problem
    e = error(tmp_path, head + "BalancerMember gopher://h:1\n</Proxy>\n")
    assert "scheme 'gopher'" in e.problem
    e = error(tmp_path, head + "</Proxy>\n")
    assert e.key == "line 2" and "no BalancerMember" in e.problem


def test_proxyset_parameters(tmp_path) -> None:
    """ProxySet lbmethod, stickysession, stickysessionsep, nofailover and maxattempts apply."""
    config, warnings = read(
        tmp_path,
        """
        Listen 80
        <Proxy balancer://app>
            ProxySet lbmethod=bytraffic stickysession=JSESSIONID|jsessionid stickysessionsep=!
            ProxySet nofailover=On maxattempts=2 timeout=9
            BalancerMember ajp://h:1
        </Proxy>
        """,
    )
    b = config.balancers[0]
    assert b.lbmethod is LBMethodName.BYTRAFFIC
    assert b.sticky == StickySessionConfig(("JSESSIONID",), ("jsessionid",), "!")
    assert (b.nofailover, b.maxattempts) == (True, 2)
    assert len(warnings) == 1 and "line 4" in warnings[0]


def test_proxyset_errors(tmp_path) -> None:
    """Unknown lbmethods, member parameters and member URLs in ProxySet are errors."""
    head = "Listen 80\n<Proxy balancer://app>\nBalancerMember ajp://h:1\n"
    e = error(tmp_path, head + "ProxySet lbmethod=heartbeat\n</Proxy>\n")
    assert e.key == "line 4" and "heartbeat" in e.problem
    e = error(tmp_path, head + "ProxySet retry=3\n</Proxy>\n")
    assert "member parameter" in e.problem
    e = error(tmp_path, head + "ProxySet growth=3\n</Proxy>\n")
    assert "'growth' is not supported" in e.problem
    e = error(tmp_path, head + "ProxySet maxattempts=0\n</Proxy>\n")
    assert e.key == "line 4" and "maxattempts" in e.problem
    e = error(tmp_path, head + "</Proxy>\nProxySet ajp://h:1 retry=3\n")
    assert e.key == "line 5"


def test_balancer_outside_proxy_section(tmp_path) -> None:
    """BalancerMember and ProxySet outside <Proxy> take the balancer URL first."""
    config, _ = read(
        tmp_path,
        """
        Listen 80
        BalancerMember balancer://app ajp://127.0.0.1:8009 route=n1
        ProxySet balancer://app lbmethod=bybusyness stickysession=JSESSIONID
        ProxyPass / balancer://app/
        """,
    )
    b = config.balancers[0]
    assert b.members[0].route == "n1"
    assert b.lbmethod is LBMethodName.BYBUSYNESS
    assert b.sticky is not None
    e = error(tmp_path, "Listen 80\nBalancerMember ajp://h:1\n")
    assert e.key == "line 2"


def test_non_balancer_proxy_section(tmp_path) -> None:
    """<Proxy *> holds access rules and headers, not members."""
    e = error(tmp_path, "Listen 80\n<Proxy *>\nBalancerMember ajp://h:1\n</Proxy>\n")
    assert e.key == "line 3"
    assert "BalancerMember belongs inside <Proxy balancer://name>" in e.problem


def test_proxy_sections_for_one_balancer_merge(tmp_path) -> None:
    """Two <Proxy> sections for one balancer add to it, as in Apache."""
    config, _ = read(
        tmp_path,
        "Listen 80\n<Proxy balancer://app>\nBalancerMember ajp://h:1\n</Proxy>\n"
        "<Proxy balancer://app>\nBalancerMember ajp://h:2\n</Proxy>\n",
    )
    assert len(config.balancers[0].members) == 2


def test_duplicate_route_and_mixed_websocket(tmp_path) -> None:
    """The model's balancer checks become errors on the <Proxy> line."""
    e = error(
        tmp_path,
        "Listen 80\n<Proxy balancer://app>\nBalancerMember ajp://h:1 route=a\n"
        "BalancerMember ajp://h:2 route=a\n</Proxy>\n",
    )
    assert e.key == "line 2" and "used twice" in e.problem
    e = error(
        tmp_path,
        "Listen 80\n<Proxy balancer://app>\nBalancerMember ajp://h:1\n"
        "BalancerMember ws://h:2\n</Proxy>\n",
    )
    assert "mixes" in e.problem


def test_no_sticky_by_default(tmp_path) -> None:
    """Without stickysession Apache is not sticky, and neither is the imported balancer."""
    config, _ = read(tmp_path, APP + "Listen 80\n")
    assert config.balancers[0].sticky is None


# -- mod_proxy_hcheck ------------------------------------------------------------


def _health(tmp_path, params: str, scheme: str = "http://127.0.0.1:8080"):
    config, warnings = read(
        tmp_path,
        f"Listen 8080\n<Proxy balancer://app>\n    BalancerMember {scheme} route=n1 {params}\n</Proxy>\n"
        "ProxyPass / balancer://app/\n",
    )
    return config.balancers[0].members[0].health, warnings


def test_hcheck_parameters_become_the_member_health_check(tmp_path) -> None:
    from twisted_lb.config.model import HealthCheckKind

    health, _ = _health(tmp_path, "hcmethod=GET11 hcuri=/ping hcinterval=10 hcpasses=2 hcfails=3")
    assert (health.kind, health.method, health.path) == (HealthCheckKind.HTTP, "GET", "/ping")
    assert (health.interval, health.passes, health.fails) == (10, 2, 3)
    # Apache's defaults: every 30 s, one pass and one fail; HEAD of / without hcuri.
    health, _ = _health(tmp_path, "hcmethod=HEAD")
    assert (health.method, health.path, health.interval, health.passes, health.fails) == (
        "HEAD", "/", 30, 1, 1,
    )
    health, _ = _health(tmp_path, "hcmethod=CPING", scheme="ajp://127.0.0.1:8009")
    assert health.kind is HealthCheckKind.CPING
    health, _ = _health(tmp_path, "hcmethod=TCP")
    assert health.kind is HealthCheckKind.TCP


def test_hcheck_without_method_warns_and_checks_nothing(tmp_path) -> None:
    health, warnings = _health(tmp_path, "hcinterval=5")
    assert health is None
    assert any("without hcmethod" in w for w in warnings)


def test_hcheck_errors_name_the_line(tmp_path) -> None:
    for params, problem in (
        ("hcmethod=POST", "hcmethod=POST: not one of"),
        ("hcmethod=TCP hcuri=/x", "hcuri is only used by HTTP checks"),
        ("hcmethod=GET hcfails=0", "fails"),
    ):
        path = write(
            tmp_path, "httpd.conf",
            f"<Proxy balancer://app>\n    BalancerMember http://127.0.0.1:8080 {params}\n</Proxy>\n",
        )
        with pytest.raises(ConfigError) as e:
            read_apache(path)
        assert e.value.key == "line 2", params
        assert problem in e.value.problem, (params, e.value.problem)
    path = write(
        tmp_path, "httpd.conf",
        "<Proxy balancer://app>\n    BalancerMember ajp://127.0.0.1:8009 hcmethod=GET\n</Proxy>\n",
    )
    with pytest.raises(ConfigError):
        read_apache(path)


# -- whole sites ----------------------------------------------------------------

DEBIAN_SITE = """
<VirtualHost *:80>
    ServerName app.example.com
    ServerAdmin webmaster@example.com
    ProxyRequests Off
    ProxyPreserveHost On
    <Proxy balancer://tomcats>
        BalancerMember ajp://127.0.0.1:8009 route=node1
        BalancerMember ajp://127.0.0.1:8010 route=node2
        ProxySet stickysession=JSESSIONID|jsessionid
    </Proxy>
    ProxyPass /balancer-manager !
    ProxyPass / balancer://tomcats/
    ProxyPassReverse / balancer://tomcats/
    <Location /balancer-manager>
        SetHandler balancer-manager
        Require host localhost
    </Location>
    ErrorLog ${APACHE_LOG_DIR}/app_error.log
    CustomLog ${APACHE_LOG_DIR}/app_access.log combined
</VirtualHost>
"""


@pytest.mark.skipif(
    not os.path.exists("/etc/apache2/apache2.conf"), reason="Debian's apache2 is not installed"
)
def test_debian_apache2_conf_with_a_balancer_site(tmp_path) -> None:
    """
    Debian's whole /etc/apache2 (apache2.conf, its modules, ports.conf,
    conf-enabled, the default site) plus a balancer site loads, with the
    proxy meaning of the site and of security.conf's TraceEnable Off.
    """
    import shutil

    root = tmp_path / "apache2"
    shutil.copytree("/etc/apache2", root, symlinks=False)
    write(root, "sites-enabled/app.conf", DEBIAN_SITE)
    config, warnings = read_apache(str(root / "apache2.conf"))
    # The site is a name-based virtual host next to Debian's default site.
    assert [x.endpoint for x in config.listeners] == ["tcp:80"]
    assert set(config.routes) == {
        RouteConfig("/", "tomcats", "/", preserve_host=True, hosts=("app.example.com",)),
        RouteConfig(
            "/balancer-manager", None, preserve_host=True, hosts=("app.example.com",)
        ),
    }
    [tomcats] = config.balancers
    assert [m.route for m in tomcats.members] == ["node1", "node2"]
    assert tomcats.sticky is not None
    assert config.allow_trace is False  # conf-enabled/security.conf
    # One warning per kind of accepted line, however many lines there are.
    assert len([w for w in warnings if "AddLanguage is accepted" in w]) == 1
    assert any("SetHandler balancer-manager" in w and "admin listener" in w for w in warnings)
    # ssl_module is not loaded by Debian's default modules: no 443 listener.
    assert any("<IfModule ssl_module> is skipped" in w for w in warnings)


MANAGER = APP + """
Listen 8080
ProxyPass /balancer-manager !
ProxyPass / balancer://app/
<Location /balancer-manager>
    SetHandler balancer-manager
%s
</Location>
"""


def test_manager_location_gives_the_admin_listener_its_access_rules(tmp_path) -> None:
    """<Location /balancer-manager>'s Require ip becomes admin.allow, on loopback."""
    config, warnings = read(tmp_path, MANAGER % "    Require ip 10.0.0.0/8 127.0.0.1")
    assert config.admin == AdminConfig(allow=("10.0.0.0/8", "127.0.0.1"))
    assert config.workers == 1
    assert {r.path: r.balancer for r in config.routes} == {"/balancer-manager": None, "/": "app"}
    [warning] = [w for w in warnings if "SetHandler balancer-manager" in w]
    assert "http://127.0.0.1:8081/" in warning and "lets in 10.0.0.0/8, 127.0.0.1" in warning
    assert any("workers = 1" in w for w in warnings)


@pytest.mark.parametrize(
    ("lines", "allow"),
    [
        ("", None),
        ("    Require all granted", None),
        ("    Require all denied", ()),
        ("    Require local", ("local",)),
        ("    Require host localhost", ("local",)),
        ("    Order deny,allow\n    Deny from all\n    Allow from 127.0.0.1 10.1", ("127.0.0.1", "10.1")),
        ("    Order allow,deny\n    Allow from 192.168.0.0/16", ("192.168.0.0/16",)),
        ("    Order allow,deny\n    Allow from all", None),
    ],
)
def test_manager_location_access_forms(tmp_path, lines: str, allow) -> None:
    config, _ = read(tmp_path, MANAGER % lines)
    assert config.admin is not None and config.admin.allow == allow


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ("    Require host admin.example.com", "reverse DNS"),
        ("    Order deny,allow\n    Deny from 10.9.9.9", "write Require ip"),
    ],
)
def test_manager_location_refused_access(tmp_path, lines: str, problem: str) -> None:
    assert problem in error(tmp_path, MANAGER % lines).problem


def test_manager_and_status_locations_intersect(tmp_path) -> None:
    text = MANAGER % "    Require ip 10.0.0.0/8 127.0.0.1" + (
        "<Location /server-status>\n    SetHandler server-status\n"
        "    Require ip 10.1.0.0/16 192.168.1.1\n</Location>\n"
    )
    config, _ = read(tmp_path, text)
    assert config.admin.allow == ("10.1.0.0/16",)


def test_no_manager_location_no_admin(tmp_path) -> None:
    config, _ = read(tmp_path, APP + "Listen 8080\nProxyPass / balancer://app/\n")
    assert config.admin is None and config.workers == "auto"


def test_every_classified_directive_is_documented() -> None:
    """docs/migrating-from-apache.md names every accepted and refused directive."""
    import re

    from twisted_lb.config import _apache_directives as d

    doc = open(
        os.path.join(os.path.dirname(__file__), "..", "..", "docs", "migrating-from-apache.md"),
        encoding="utf-8",
    ).read()
    named = {m.lower() for m in re.findall(r"`<?/?([A-Za-z0-9]+)\*?[ >`]", doc)}
    families = {m.lower() for m in re.findall(r"`<?([A-Za-z0-9]+)\*`", doc)}
    families -= {"sslproxy", "hc"}  # too wide to vouch for a directive
    missing = [
        key
        for key in [*d.ACCEPTED, *d.REFUSED, *d.ACCEPTED_SECTIONS, *d.REFUSED_SECTIONS]
        if key not in named and not any(key.startswith(f) for f in families)
    ]
    assert missing == []


# -- Header and RequestHeader ------------------------------------------------------


def test_route_cookie_idiom(tmp_path) -> None:
    """Apache's documented ROUTEID idiom becomes a conditional edit on the route."""
    config, _ = read(
        tmp_path,
        """
        Listen 80
        Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED
        <Proxy balancer://app>
            BalancerMember http://127.0.0.1:8080 route=1
            BalancerMember http://127.0.0.1:8081 route=2
            ProxySet stickysession=ROUTEID
        </Proxy>
        ProxyPass / balancer://app/
        """,
    )
    [route] = config.routes
    assert route.response_headers == (
        HeaderEdit(
            "add",
            "Set-Cookie",
            "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/",
            condition="BALANCER_ROUTE_CHANGED",
        ),
    )
    assert config.balancers[0].sticky == StickySessionConfig.from_apache("ROUTEID", ".")


def test_header_scopes_in_apache_order(tmp_path) -> None:
    """Main server, virtual host, <Proxy>, then the <Location> holding the route."""
    config, _ = read(
        tmp_path,
        """
        Header set X-1 main
        <VirtualHost *:80>
            Header always set X-2 vhost
            RequestHeader set X-Forwarded-Proto https
            <Proxy balancer://app>
                BalancerMember http://127.0.0.1:8080
                Header set X-3 proxy
            </Proxy>
            <Location /app>
                ProxyPass balancer://app/
                Header unset X-1
                RequestHeader unset Authorization
            </Location>
            ProxyPass /other http://127.0.0.1:9000/
        </VirtualHost>
        """,
    )
    routes = {r.path: r for r in config.routes}
    app = routes["/app"]
    assert [(e.action, e.name, e.value, e.always) for e in app.response_headers] == [
        ("set", "X-1", "main", False),
        ("set", "X-2", "vhost", True),
        ("set", "X-3", "proxy", False),
        ("unset", "X-1", "", False),
    ]
    assert [(e.action, e.name) for e in app.request_headers] == [
        ("set", "X-Forwarded-Proto"),
        ("unset", "Authorization"),
    ]
    other = routes["/other"]
    assert [e.name for e in other.response_headers] == ["X-1", "X-2"]


@pytest.mark.parametrize(
    "line, problem",
    [
        ("Header echo X-A", "echo is not supported"),
        ("Header set X-A", "needs a value"),
        ("Header set X-A 1 early", "early is not supported"),
        ("Header set X-A 1 expr=%{REQUEST_STATUS}==200", "expr= conditions"),
        ("Header set X-T %t", "'%t' is not supported"),
        ("Header set X-A 1 env=FROM_SETENVIF", "only these variables"),
        ("RequestHeader set X-P expr=%{HTTP_HOST}", "expr=%{REQUEST_SCHEME}"),
        ("RequestHeader set X-W %{BALANCER_WORKER_ROUTE}e", "before it picks a member"),
        ("Header frob X-A 1", "'frob' is not one of"),
        ("Header edit X-A (", "needs a regular expression and a replacement"),
    ],
)
def test_header_errors(tmp_path, line: str, problem: str) -> None:
    """Header lines twisted_lb cannot honour are errors naming the line and the reason."""
    e = error(tmp_path, f"Listen 80\n{APP}ProxyPass / balancer://app/\n{line}\n")
    assert e.key == "line 7" and problem in e.problem


def test_header_in_location_covering_part_of_a_route(tmp_path) -> None:
    """A Header in a <Location> narrower than any route is refused, not applied wider."""
    e = error(
        tmp_path,
        f"Listen 80\n{APP}ProxyPass / balancer://app/\n<Location /admin>\n"
        "Header set X-Admin 1\n</Location>\n",
    )
    assert e.key == "line 8" and "part of the route /" in e.problem


# -- access rules -------------------------------------------------------------------


def test_access_rules(tmp_path) -> None:
    """Require and Order/Allow/Deny become per-route rules in Apache's merge order."""
    config, _ = read(
        tmp_path,
        """
        Listen 80
        <Proxy *>
            Require all granted
        </Proxy>
        <Proxy balancer://app>
            BalancerMember ajp://h:1
            Require ip 10.0.0.0/8 192.168.1
            Require local
        </Proxy>
        ProxyPass / balancer://app/
        ProxyPass /direct http://127.0.0.1:9000/
        <Location /admin>
            Order deny,allow
            Deny from all
            Allow from 10.1.2.3
        </Location>
        <Location /direct>
            Require all denied
        </Location>
        """,
    )
    routes = {r.path: r for r in config.routes}
    assert routes["/"].access == (
        AccessRule("/", "require", ("all",)),
        AccessRule("/", "require", ("10.0.0.0/8", "192.168.1", "local")),
        AccessRule("/admin", "deny,allow", ("10.1.2.3",), ("all",)),
    )
    assert routes["/direct"].access == (
        AccessRule("/direct", "require", ("all",)),
        AccessRule("/direct", "require", ()),
    )


@pytest.mark.parametrize(
    "line, problem",
    [
        ("Require group admins", "Require group is not supported"),
        ("Require not ip 10.0.0.1", "Require not"),
        ("Require ip example.com", "is not an address"),
        ("Allow from .example.com", "reverse DNS"),
        ("Order mutual-failure", "mutual-failure"),
        ("Require env LET_IN", "is not supported"),
    ],
)
def test_access_errors(tmp_path, line: str, problem: str) -> None:
    """Access lines that cannot be checked are refused with the reason."""
    text = f"Listen 80\n{APP}ProxyPass / balancer://app/\n<Location />\n{line}\n</Location>\n"
    e = error(tmp_path, text)
    assert e.key == "line 8" and problem in e.problem


def test_require_outside_a_section(tmp_path) -> None:
    """Require at the top level is refused, as Apache refuses it."""
    e = error(tmp_path, "Listen 80\nRequire all denied\n")
    assert "belongs in a <Location> or <Proxy>" in e.problem


def test_parameters_on_the_proxy_line_and_flags(tmp_path) -> None:
    """<Proxy balancer://x key=value> sets the balancer; nocanon is accepted; others warn once."""
    config, warnings = read(
        tmp_path,
        """
        Listen 80
        <Proxy balancer://app lbmethod=bybusyness stickysession=ROUTEID>
            BalancerMember http://127.0.0.1:8080 route=1 keepalive=On smax=5 ttl=120
            BalancerMember http://127.0.0.1:8081 route=2 keepalive=On flushpackets=on
        </Proxy>
        ProxyPass /app balancer://app/ nocanon
        """,
    )
    [app] = config.balancers
    assert app.lbmethod == LBMethodName.BYBUSYNESS
    assert app.sticky == StickySessionConfig.from_apache("ROUTEID", ".")
    assert app.members[0].ttl == 120
    assert len([w for w in warnings if "keepalive=On: accepted without effect" in w]) == 1
    assert any("flushpackets=on: accepted without effect" in w for w in warnings)


def test_proxyhcexpr_status_form(tmp_path) -> None:
    """hcexpr names a ProxyHCExpr of the status form; it becomes the check's expected statuses."""
    config, _ = read(
        tmp_path,
        """
        Listen 80
        ProxyHCExpr ok234 {%{REQUEST_STATUS} =~ /^[234]/}
        ProxyHCExpr below500 {%{REQUEST_STATUS} -lt 500}
        <Proxy balancer://app>
            BalancerMember http://127.0.0.1:8080 hcmethod=GET hcuri=/up hcexpr=ok234
            BalancerMember http://127.0.0.1:8081 hcmethod=HEAD hcexpr=below500
        </Proxy>
        ProxyPass / balancer://app/
        """,
    )
    first, second = config.balancers[0].members
    assert first.health is not None and first.health.expect == ((200, 499),)
    assert second.health is not None and second.health.expect == ((100, 499),)
    e = error(
        tmp_path,
        "Listen 80\nProxyHCExpr body {hc('body') !~ /Out of Order/}\n",
    )
    assert e.key == "line 2" and "only the status form" in e.problem
    e = error(
        tmp_path,
        "Listen 80\n<Proxy balancer://app>\nBalancerMember http://h:1 hcmethod=GET hcexpr=nope\n"
        "</Proxy>\n",
    )
    assert e.key == "line 3" and "no ProxyHCExpr nope" in e.problem


@pytest.mark.parametrize(
    "line, protocols",
    [
        ("SSLProtocol -all +TLSv1.3", ("TLSv1.3",)),
        ("SSLProtocol all -SSLv3 -TLSv1 -TLSv1.1", ("TLSv1.2", "TLSv1.3")),
        ("SSLProtocol TLSv1.2", ("TLSv1.2",)),
        ("SSLProtocol +TLSv1.2 +TLSv1.3", ("TLSv1.2", "TLSv1.3")),
        ("", ("TLSv1.2", "TLSv1.3")),
    ],
)
def test_ssl_protocol(tmp_path, line: str, protocols: tuple[str, ...]) -> None:
    """SSLProtocol is read as Apache reads it, into the TLS versions offered."""
    cert = write(tmp_path, "cert.pem", "x")
    config, _ = read(
        tmp_path,
        f"Listen 443\n{line}\n<VirtualHost *:443>\nSSLEngine on\nSSLCertificateFile {cert}\n"
        "SSLCipherSuite HIGH:!aNULL:!MD5\nSSLHonorCipherOrder on\n</VirtualHost>\n",
    )
    tls = config.listeners[0].tls
    assert tls is not None
    assert (tls.protocols, tls.ciphers) == (protocols, "HIGH:!aNULL:!MD5")


def test_ssl_protocol_enabling_nothing_offered(tmp_path) -> None:
    """SSLProtocol that leaves neither TLS 1.2 nor 1.3 names its line."""
    cert = write(tmp_path, "cert.pem", "x")
    head = f"Listen 443\n<VirtualHost *:443>\nSSLEngine on\nSSLCertificateFile {cert}\n"
    e = error(tmp_path, head + "SSLProtocol -all +TLSv1.1\n</VirtualHost>\n")
    assert e.key == "line 5" and "enables no TLS version" in e.problem


def test_shadowing_follows_location_precedence(tmp_path) -> None:
    """
    Guacamole's layout (ProxyPass in <Location>, the WebSocket location
    last) gets no warning: in Apache the last matching <Location> wins.
    The reverse order, and a plain ProxyPass under a <Location> one, do.
    """
    _, warnings = read(
        tmp_path,
        """
        Listen 80
        <Location /guacamole/>
            ProxyPass http://127.0.0.1:8080/guacamole/ flushpackets=on
        </Location>
        <Location /guacamole/websocket-tunnel>
            ProxyPass ws://127.0.0.1:8080/guacamole/websocket-tunnel
        </Location>
        """,
    )
    assert not [w for w in warnings if "shadowed" in w]
    _, warnings = read(
        tmp_path,
        """
        Listen 80
        <Location /guacamole/websocket-tunnel>
            ProxyPass ws://127.0.0.1:8080/guacamole/websocket-tunnel
        </Location>
        <Location /guacamole/>
            ProxyPass http://127.0.0.1:8080/guacamole/
        </Location>
        ProxyPass /guacamole/x http://127.0.0.1:9000/
        """,
    )
    shadowed = [w for w in warnings if "shadowed" in w]
    assert len(shadowed) == 2
    assert "<Location /guacamole/websocket-tunnel> (line 3) is shadowed by <Location /guacamole/>" in shadowed[0]
    assert "/guacamole/x (line 8) is shadowed by <Location /guacamole/> (line 6)" in shadowed[1]


def test_basic_authentication(tmp_path) -> None:
    """AuthType Basic with an htpasswd file and Require valid-user/user become login rules."""
    users = write(tmp_path, "users", "alice:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n")
    config, _ = read(
        tmp_path,
        f"""
        Listen 80
        {APP}
        ProxyPass / balancer://app/
        <Location /admin>
            AuthType Basic
            AuthName "Admin area"
            AuthBasicProvider file
            AuthUserFile {users}
            Require user alice
        </Location>
        <Location /admin/public>
            Require all granted
        </Location>
        """,
    )
    [route] = config.routes
    assert route.auth == (
        AuthRule("/admin", "Admin area", users, ("alice",)),
        AuthRule("/admin/public", "", ""),
    )
    bad = write(tmp_path, "bad", "bob:plaintext\n")
    e = error(
        tmp_path,
        f"Listen 80\n{APP}ProxyPass / balancer://app/\n<Location />\nAuthType Basic\n"
        f"AuthUserFile {bad}\nRequire valid-user\n</Location>\n",
    )
    assert e.key == "line 9" and "not bcrypt, {SHA} or $apr1$" in e.problem
    e = error(
        tmp_path,
        f"Listen 80\n{APP}ProxyPass / balancer://app/\n<Location />\nRequire valid-user\n"
        "</Location>\n",
    )
    assert "needs AuthType Basic and AuthUserFile" in e.problem


def test_proxypassmatch(tmp_path) -> None:
    """ProxyPassMatch becomes a proxying rule (or a 404 for !), checked in file order with
    ProxyPass."""
    config, _ = read(
        tmp_path,
        f"""
        Listen 80
        {APP}
        ProxyPassMatch ^/static/ !
        ProxyPassMatch ^/(.*\\.jsp)$ ajp://127.0.0.1:8009/app/$1
        ProxyPassMatch ^/api/(.*)$ balancer://app/v2/$1
        ProxyPass / balancer://app/
        """,
    )
    rules = [(r.pattern, r.target, r.status, r.balancer) for r in config.rules]
    assert rules == [
        ("^/static/", "-", 404, ""),
        ("^/(.*\\.jsp)$", "/app/$1", 0, "ajp-127.0.0.1-8009"),
        ("^/api/(.*)$", "/v2/$1", 0, "app"),
    ]
    e = error(tmp_path, "Listen 80\nProxyPassMatch ^/(.*)$ http://h:1/$1 timeout=5\n")
    assert e.key == "line 2" and "with parameters is not supported" in e.problem
    # A ProxyPassMatch after a ProxyPass (or one in a <Location>) matches no path it serves.
    config, _ = read(
        tmp_path,
        f"""
        Listen 80
        {APP}
        <Location /loc>
            ProxyPass balancer://app/loc
        </Location>
        ProxyPass /app/ balancer://app/
        ProxyPass /api balancer://app/api
        ProxyPassMatch ^/(.*)$ balancer://app/$1
        """,
    )
    [rule] = config.rules
    assert rule.pattern == "^(?!/app/|/api(?:$|[/;])|/loc(?:$|[/;])).*?(?:^/(.*)$)"
    assert rule.target == "/$1"


def test_worked_examples_in_the_migration_guide_load(tmp_path) -> None:
    """Every Apache block under 'Worked examples' in docs/migrating-from-apache.md loads."""
    import re

    doc = open(
        os.path.join(os.path.dirname(__file__), "..", "..", "docs", "migrating-from-apache.md"),
        encoding="utf-8",
    ).read()
    section = doc.split("## Worked examples", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```\n(.*?)```", section, re.S)
    assert len(blocks) == 6
    users = write(tmp_path, "reports.htpasswd", "bob:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n")
    cert = write(tmp_path, "chat.pem", "x")
    prelude = "Listen 80\nListen 443\n" + "".join(
        f"<Proxy balancer://{name}>\nBalancerMember http://127.0.0.1:{port}\n</Proxy>\n"
        for name, port in (("www", 9001), ("api", 9002))
    )
    for block in blocks:
        text = block.replace("/etc/apache2/reports.htpasswd", users)
        text = text.replace("/etc/ssl/chat.pem", cert)
        if "balancer://app" in text and "<Proxy balancer://app>" not in text:
            text = APP + text
        if "ProxyPass" not in text and "RewriteRule" not in text:
            text += "\nProxyPass / http://127.0.0.1:9000/\n"
        config, _ = read(tmp_path, prelude + text)
        assert config.routes or config.rules


def test_request_header_from_the_connection(tmp_path) -> None:
    """RequestHeader … expr=%{REQUEST_SCHEME} and env=HTTPS read the client connection."""
    config, _ = read(
        tmp_path,
        f"Listen 80\n{APP}ProxyPass / balancer://app/\n"
        "RequestHeader set X-Forwarded-Proto expr=%{REQUEST_SCHEME}\n"
        "RequestHeader set X-Forwarded-Ssl on env=HTTPS\n",
    )
    assert config.routes[0].request_headers == (
        HeaderEdit("set", "X-Forwarded-Proto", "%{REQUEST_SCHEME}e"),
        HeaderEdit("set", "X-Forwarded-Ssl", "on", condition="HTTPS"),
    )


def test_proxy_via(tmp_path) -> None:
    """ProxyVia On/Full append this proxy to Via both ways; Block removes Via from requests."""
    config, _ = read(
        tmp_path,
        f"{APP}<VirtualHost *:80>\nServerName proxy.example.com\nProxyVia Full\n"
        "ProxyPass / balancer://app/\n</VirtualHost>\n",
    )
    via = "1.1 proxy.example.com (twisted_lb)"
    [route] = config.routes
    assert route.request_headers == (HeaderEdit("append", "Via", via),)
    assert route.response_headers == (HeaderEdit("append", "Via", via, always=True),)
    config, _ = read(tmp_path, f"Listen 80\n{APP}ProxyVia Block\nProxyPass / balancer://app/\n")
    assert config.routes[0].request_headers == (HeaderEdit("unset", "Via"),)
    assert config.routes[0].response_headers == ()


def test_first_hosts_of_two_ports_are_warned_about(tmp_path) -> None:
    """Name-based hosts on one port and a proxying host on another: the difference is said."""
    _, warnings = read(
        tmp_path,
        "<VirtualHost *:80>\nServerName a\nProxyPass / http://h:1/\n</VirtualHost>\n"
        "<VirtualHost *:80>\nServerName b\nProxyPass / http://h:2/\n</VirtualHost>\n"
        "<VirtualHost *:8080>\nServerName c\nProxyPass / http://h:3/\n</VirtualHost>\n",
    )
    assert [w for w in warnings if "each the first on their port" in w] == [
        "line 9: this <VirtualHost> and the one at line 1 are each the first on their port; "
        "twisted_lb chooses virtual hosts by name on every port, so a name neither lists "
        "reaches the routes of both (the first file's route wins on the same path), where "
        "Apache would use the first host of the port the request came to"
    ]


def test_encoded_slashes_need_nocanon_and_allow_encoded_slashes(tmp_path) -> None:
    """Only a ProxyPass with nocanon, in a host with AllowEncodedSlashes On or
    NoDecode (its own or the main server's), passes %2F on."""
    config, _ = read(
        tmp_path,
        """
        Listen 127.0.0.1:8080
        AllowEncodedSlashes NoDecode
        ProxyPass /a http://127.0.0.1:9000/a nocanon
        ProxyPass /b http://127.0.0.1:9000/b
        <VirtualHost *:8080>
            ServerName off.example
            AllowEncodedSlashes Off
            ProxyPass /c http://127.0.0.1:9000/c nocanon
        </VirtualHost>
        <VirtualHost *:8080>
            ServerName on.example
            ProxyPass /d http://127.0.0.1:9000/d nocanon
        </VirtualHost>
        """,
    )
    slashes = {r.path: r.encoded_slashes for r in config.routes}
    assert slashes == {"/a": True, "/b": False, "/c": False, "/d": True}
    with pytest.raises(ConfigError) as e:
        read(tmp_path, "AllowEncodedSlashes Maybe\n")
    assert "On, Off or NoDecode" in str(e.value)


def test_protocols_map_to_http2_per_virtual_host(tmp_path) -> None:
    """Protocols h2 http/1.1 offers HTTP/2 on the host's TLS listener; without h2
    (Apache's default is http/1.1 alone) it is not offered; the main server's
    Protocols applies to hosts without their own."""
    config, warnings = read(
        tmp_path,
        """
        Protocols h2 http/1.1
        <VirtualHost *:8443>
            SSLEngine on
            SSLCertificateFile /c.pem
        </VirtualHost>
        <VirtualHost *:9443>
            Protocols http/1.1
            SSLEngine on
            SSLCertificateFile /c.pem
        </VirtualHost>
        <VirtualHost *:8080>
            Protocols h2c http/1.1
        </VirtualHost>
        """,
    )
    http2 = {listener.endpoint: listener.http2 for listener in config.listeners}
    assert http2 == {"tcp:8443": True, "tcp:9443": False, "tcp:8080": True}
    assert any("h2c" in w and "only over TLS" in w for w in warnings)
    config, _ = read(tmp_path, "Listen 443\nSSLEngine On\nSSLCertificateFile /c.pem\n")
    assert [listener.http2 for listener in config.listeners] == [False]
    assert "unknown protocol" in error(tmp_path, "Listen 80\nProtocols spdy/3\n").problem
