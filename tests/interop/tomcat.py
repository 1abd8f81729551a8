"""Real Apache Tomcat 10 nodes for the twisted_lb interop tests.

This module starts and stops private Tomcat instances (one C{CATALINA_BASE} each, built in a
temporary directory from the read-only installation in C{CATALINA_HOME}) with a small test web
application deployed at C{/app}. It installs nothing, talks only to 127.0.0.1, stops everything
it started by PID, and bounds every wait.

See C{/work/shared/notes/tomcat.md} for the facts and traps behind the choices made here.

Typical use::

    webapp = build_webapp(cache_dir)
    nodes = [TomcatNode("tomcat1", webapp), TomcatNode("tomcat2", webapp)]
    start_nodes(nodes)          # or link_cluster(nodes); start_cluster(nodes)
    try:
        ...
    finally:
        stop_nodes(nodes)

It deliberately imports nothing from pytest.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

import attrs

__all__ = [
    "AJP_CONNECTORS",
    "ClusterMember",
    "EXAMPLES_DOCBASE",
    "HttpResult",
    "TomcatError",
    "TomcatGroup",
    "TomcatNode",
    "build_webapp",
    "find_catalina_home",
    "free_port",
    "http_request",
    "link_cluster",
    "make_self_signed_cert",
    "missing_prerequisites",
    "start_cluster",
    "start_nodes",
    "stop_nodes",
    "wait_for_replication",
]

#: Where Debian's tomcat10 package puts C{bin/} and C{lib/}.
DEFAULT_CATALINA_HOME = Path("/usr/share/tomcat10")
#: Debian's tomcat10-examples web application.
EXAMPLES_DOCBASE = Path("/usr/share/tomcat10-examples/examples")
#: The resources of the test web application (Java sources, web.xml, static files, JSP).
WEBAPP_SOURCES = Path(__file__).resolve().parent / "webapp"
#: The loopback address every connector binds and every client connects to.
LOOPBACK = "127.0.0.1"
#: Tomcat's AJP connector implementations, by short name (the Connector's C{protocol});
#: C{AJP/1.3}, Tomcat's default, is NIO.
AJP_CONNECTORS = {
    "nio": "org.apache.coyote.ajp.AjpNioProtocol",
    "nio2": "org.apache.coyote.ajp.AjpNio2Protocol",
}


class TomcatError(RuntimeError):
    """A Tomcat node could not be built, started, stopped or verified."""


#: Every node launched by this process, so that an interpreter exit kills what tests left.
_LAUNCHED: list[TomcatNode] = []


@atexit.register
def _kill_leftovers() -> None:
    for node in list(_LAUNCHED):
        with contextlib.suppress(Exception):
            if node.running:
                node.kill()


# --------------------------------------------------------------------------------------------
# Discovery and prerequisites


def _looks_like_catalina_home(path: Path) -> bool:
    return (path / "bin" / "catalina.sh").is_file() and (path / "lib" / "catalina.jar").is_file()


def find_catalina_home() -> Path | None:
    """Find a Tomcat 10 installation.

    @return: C{$CATALINA_HOME} if it is set and holds C{bin/catalina.sh} and C{lib/catalina.jar},
        else C{/usr/share/tomcat10} if it does, else C{None}.
    """
    env = os.environ.get("CATALINA_HOME")
    candidates = [Path(env)] if env else []
    candidates.append(DEFAULT_CATALINA_HOME)
    for candidate in candidates:
        if _looks_like_catalina_home(candidate):
            return candidate
    return None


def _templates_dir(catalina_home: Path) -> Path:
    """The pristine configuration templates (Debian: C{etc/}; upstream: C{conf/})."""
    for name in ("etc", "conf"):
        if (catalina_home / name / "web.xml").is_file():
            return catalina_home / name
    raise TomcatError(f"no conf templates (etc/ or conf/ with web.xml) under {catalina_home}")


def missing_prerequisites(catalina_home: Path | None = None) -> str | None:
    """Say why the interop tests cannot run here, or C{None} if they can.

    @param catalina_home: the installation to check; found with L{find_catalina_home} if C{None}.
    @return: a human-readable reason, or C{None}.
    """
    home = catalina_home or find_catalina_home()
    if home is None:
        return (
            "Apache Tomcat 10 not found: set CATALINA_HOME or install Debian's tomcat10 "
            f"(looked in $CATALINA_HOME and {DEFAULT_CATALINA_HOME})"
        )
    if not _looks_like_catalina_home(home):
        return f"{home} is not a Tomcat installation (no bin/catalina.sh or lib/catalina.jar)"
    try:
        _templates_dir(home)
    except TomcatError as e:
        return str(e)
    for tool in ("java", "javac"):
        if shutil.which(tool) is None:
            return f"{tool} not found on PATH (a JDK 11+ is needed to compile the test webapp)"
    return None


# --------------------------------------------------------------------------------------------
# Small networking helpers


#: Ports handed out by L{free_port} in this process (never handed out twice).
_GIVEN_PORTS: set[int] = set()
#: Where L{free_port} looks first: below the kernel's ephemeral range.
_LOW_PORT = 10000


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (outgoing connections' local ports)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """
    Return a TCP port on 127.0.0.1 that is free now, not handed out before by
    this process, and, where the machine allows, outside the kernel's
    ephemeral range: a server started seconds later (a JVM) then cannot find
    it taken by the local end of some outgoing connection meanwhile.
    """
    high = _ephemeral_low() - 1
    for _ in range(200 if high > _LOW_PORT else 0):
        port = random.randint(_LOW_PORT, high)
        if port in _GIVEN_PORTS:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                continue
        _GIVEN_PORTS.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        port = int(s.getsockname()[1])
    _GIVEN_PORTS.add(port)
    return port


def _port_accepts(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def _insecure_tls_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@attrs.frozen
class HttpResult:
    """A complete HTTP response read by L{http_request}.

    @ivar status: the status code.
    @ivar reason: the reason phrase (Tomcat sends none).
    @ivar headers: every header line as C{(name, value)}, in order, repeats kept.
    @ivar body: the body bytes.
    """

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header C{name} (case-insensitive), or C{None}."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        """Every value of header C{name} (case-insensitive), in order."""
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    def json(self) -> dict:
        """The body decoded as JSON."""
        return json.loads(self.body)

    def cookie(self, name: str) -> str | None:
        """The value set for cookie C{name} by the last matching C{Set-Cookie}, or C{None}."""
        found = None
        for value in self.header_values("Set-Cookie"):
            first = value.split(";", 1)[0]
            key, _, val = first.partition("=")
            if key.strip() == name:
                found = val.strip()
        return found


def http_request(
    port: int,
    path: str,
    method: str = "GET",
    *,
    headers: dict[str, str] | Sequence[tuple[str, str]] | None = None,
    body: bytes | None = None,
    tls: bool = False,
    host: str = LOOPBACK,
    timeout: float = 10.0,
) -> HttpResult:
    """Make one HTTP/1.1 request on a fresh connection and read the whole response.

    @param port: the TCP port on C{host}.
    @param path: the request target, e.g. C{/app/echo?x=1}.
    @param headers: extra request headers.
    @param body: the request body, if any (sent with a Content-Length).
    @param tls: speak HTTPS, without verifying the certificate.
    @param timeout: the socket timeout in seconds.
    """
    conn: http.client.HTTPConnection
    if tls:
        conn = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=_insecure_tls_context()
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        items = headers.items() if isinstance(headers, dict) else (headers or [])
        for k, v in items:
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return HttpResult(resp.status, resp.reason, list(resp.getheaders()), data)
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# Certificates


def make_self_signed_cert(cert_path: Path, key_path: Path, common_name: str = "localhost") -> None:
    """Write a self-signed RSA-2048 certificate (for C{common_name} and 127.0.0.1) and its key.

    The project's own L{twisted_lb.tls.make_self_signed}, under the harness's name.
    """
    from twisted_lb.tls import make_self_signed

    make_self_signed(cert_path, key_path, common_name)


# --------------------------------------------------------------------------------------------
# The test web application


_BUILD_LOCK = threading.Lock()


def _webapp_resources() -> list[Path]:
    return sorted(p for p in WEBAPP_SOURCES.rglob("*") if p.is_file() and p.suffix != ".class")


def _webapp_hash(catalina_home: Path) -> str:
    digest = hashlib.sha256()
    for path in _webapp_resources():
        digest.update(str(path.relative_to(WEBAPP_SOURCES)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    # The compiled classes also depend on the API jars and the compiler.
    for jar in sorted((catalina_home / "lib").glob("*api*.jar")):
        with contextlib.suppress(OSError):
            st = jar.stat()
            digest.update(f"{jar.name}:{st.st_size}:{int(st.st_mtime)}\0".encode())
    digest.update((shutil.which("javac") or "").encode())
    return digest.hexdigest()[:16]


def build_webapp(dest: Path, catalina_home: Path | None = None, timeout: float = 120.0) -> Path:
    """Build (or reuse) the exploded test web application.

    The sources are the resource files under C{tests/interop/webapp/}: C{src/**.java} are
    compiled with C{javac} against C{$CATALINA_HOME/lib/*} into C{WEB-INF/classes}; C{WEB-INF/}
    (web.xml), C{static/} and C{*.jsp} are copied. The result is cached in
    C{dest/app-<hash of the sources>}, so a second call (or a second test session using the same
    C{dest}) reuses it; the final directory appears atomically (rename), so concurrent builders
    do not see half a webapp.

    @param dest: the cache directory (created if needed).
    @param catalina_home: the Tomcat installation to compile against.
    @param timeout: the bound on the javac run, in seconds.
    @return: the webapp directory, to be used as a context C{docBase}.
    """
    home = catalina_home or find_catalina_home()
    if home is None:
        raise TomcatError("Tomcat not found (CATALINA_HOME or /usr/share/tomcat10)")
    javac = shutil.which("javac")
    if javac is None:
        raise TomcatError("javac not found on PATH")
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / f"app-{_webapp_hash(home)}"
    with _BUILD_LOCK:
        if (final / "WEB-INF" / "classes" / ".complete").is_file():
            return final
        build = Path(tempfile.mkdtemp(prefix=".build-", dir=dest))
        try:
            for path in _webapp_resources():
                rel = path.relative_to(WEBAPP_SOURCES)
                if rel.parts[0] == "src":
                    continue
                target = build / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
            classes = build / "WEB-INF" / "classes"
            classes.mkdir(parents=True, exist_ok=True)
            sources = sorted(str(p) for p in (WEBAPP_SOURCES / "src").rglob("*.java"))
            cmd = [
                javac,
                "-encoding",
                "UTF-8",
                "-nowarn",
                "-Xlint:-path",
                "--release",
                "11",
                "-cp",
                str(home / "lib" / "*"),
                "-d",
                str(classes),
                *sources,
            ]
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if proc.returncode != 0:
                raise TomcatError(
                    f"javac failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
                )
            (classes / ".complete").write_text("ok\n")
            try:
                build.rename(final)
            except OSError:
                # Someone else finished the same build first: use theirs.
                if not (final / "WEB-INF" / "classes" / ".complete").is_file():
                    raise
        finally:
            if build.exists():
                shutil.rmtree(build, ignore_errors=True)
    return final


# --------------------------------------------------------------------------------------------
# Processes


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """Return C{(state, starttime)} of process C{pid} from C{/proc}, or C{None} if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    rest = raw[raw.rfind(")") + 2 :].split()
    try:
        return rest[0], int(rest[19])
    except (IndexError, ValueError):
        return None


def _send_signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _tail(path: Path, n: int) -> list[str]:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-n:]


def _random_unique_id() -> str:
    # Tribes parses each element with Byte.parseByte: signed values (-128..127) only.
    return "{" + ",".join(str(b - 256 if b > 127 else b) for b in uuid.uuid4().bytes) + "}"


# --------------------------------------------------------------------------------------------
# Nodes


@attrs.frozen
class ClusterMember:
    """Where one cluster node's replication receiver listens (a tribes C{StaticMember}).

    @ivar name: the node's name (for humans).
    @ivar port: the C{NioReceiver} port on 127.0.0.1.
    @ivar unique_id: the tribes unique id, C{"{b0,...,b15}"}.
    """

    name: str
    port: int
    unique_id: str
    host: str = LOOPBACK


#: What each node logs per request in C{logs/attributes.log} (see L{TomcatNode.attribute_log}):
#: what the application saw of the request, the connector's protocol and TLS attributes
#: included, C{|}-separated, C{-} for what is missing.
ATTRIBUTE_LOG_FIELDS = (
    ("line", "%r"),
    ("protocol", "%H"),
    ("server_name", "%v"),
    ("server_port", "%p"),
    ("status", "%s"),
    ("cipher", "%{jakarta.servlet.request.cipher_suite}r"),
    ("key_size", "%{jakarta.servlet.request.key_size}r"),
    ("session_id", "%{jakarta.servlet.request.ssl_session_id}r"),
    ("certificates", "%{jakarta.servlet.request.X509Certificate}r"),
    ("secure_protocol", "%{org.apache.tomcat.util.net.secure_protocol_version}r"),
)
ATTRIBUTE_LOG_PATTERN = "|".join(code for _, code in ATTRIBUTE_LOG_FIELDS)


@attrs.define(eq=False)
class TomcatNode:
    """One private Tomcat instance: its own C{CATALINA_BASE}, ports, and process.

    Every port is chosen free on 127.0.0.1 when the node is created and kept across restarts.
    The node serves the test webapp at C{/app} (and Debian's examples at C{/examples} when
    C{examples} is true and they are installed).

    @ivar name: the node's name; also the Engine's C{jvmRoute} and the C{node} system property.
    @ivar webapp: the exploded test webapp directory (see L{build_webapp}).
    @ivar base_dir: the C{CATALINA_BASE} (a fresh temporary directory by default).
    @ivar catalina_home: the Tomcat installation.
    @ivar http_port: the plain HTTP/1.1 connector.
    @ivar ajp_port: the AJP/1.3 connector.
    @ivar https: whether to add an HTTPS connector (self-signed PEM certificate and key).
    @ivar https_port: the HTTPS connector's port (chosen when C{https} is true).
    @ivar cluster_port: the replication receiver's port (used when C{clustered}).
    @ivar ajp_secret: the AJP connector's C{secret} (C{secretRequired} stays true).
    @ivar packet_size: the AJP connector's C{packetSize} (8192..65536).
    @ivar clustered: whether to configure a C{SimpleTcpCluster} (see L{link_cluster}).
    @ivar cluster_peers: the other nodes' receivers (static membership).
    @ivar unique_id: this node's tribes unique id.
    @ivar examples: deploy Debian's tomcat10-examples at C{/examples} if present.
    @ivar contexts: more context paths the test webapp is deployed at besides C{/app} (e.g.
        C{["/share"]} for the second seed's C{ajp://...:PORT/share} members, C{["/xtam"]} for the
        first seed's); each gets its own context file, same settings as C{/app}.
    @ivar persist_sessions: for a node without cluster, let C{StandardManager} save sessions
        across a graceful stop (Tomcat's default); false by default so a restart loses them.
    @ivar allow_trace: let TRACE reach the webapp (Tomcat answers 405 itself otherwise).
    @ivar http_connector_attrs: extra attributes for the HTTP connector.
    @ivar ajp_connector_attrs: extra attributes for the AJP connector (e.g.
        C{allowedRequestAttributesPattern}, C{tomcatAuthentication}).
    @ivar https_connector_attrs: extra attributes for the HTTPS connector.
    @ivar heap: the maximum heap (C{-Xmx}).
    @ivar extra_java_opts: more C{CATALINA_OPTS}.
    """

    name: str
    webapp: Path
    #: None means a fresh temporary directory, made once the other arguments are validated.
    base_dir: Path = attrs.field(default=None)  # type: ignore[assignment]
    catalina_home: Path = attrs.field(factory=lambda: find_catalina_home() or DEFAULT_CATALINA_HOME)
    http_port: int = attrs.field(factory=free_port)
    ajp_port: int = attrs.field(factory=free_port)
    https: bool = False
    https_port: int | None = None
    cluster_port: int = attrs.field(factory=free_port)
    ajp_secret: str = "s3cr3t"
    packet_size: int = 8192
    clustered: bool = False
    cluster_peers: list[ClusterMember] = attrs.field(factory=list)
    unique_id: str = attrs.field(factory=_random_unique_id)
    examples: bool = True
    contexts: list[str] = attrs.field(factory=list)
    persist_sessions: bool = False
    allow_trace: bool = False
    http_connector_attrs: dict[str, str] = attrs.field(factory=dict)
    ajp_connector_attrs: dict[str, str] = attrs.field(factory=dict)
    https_connector_attrs: dict[str, str] = attrs.field(factory=dict)
    heap: str = "256m"
    extra_java_opts: list[str] = attrs.field(factory=list)

    _pid: int | None = attrs.field(default=None, init=False, repr=False)
    _pid_start: int | None = attrs.field(default=None, init=False, repr=False)
    _paused: bool = attrs.field(default=False, init=False, repr=False)
    _out_offset: int = attrs.field(default=0, init=False, repr=False)
    last_start_seconds: float | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.name):
            raise ValueError(f"node name must be a plain token (jvmRoute): {self.name!r}")
        if not 8192 <= self.packet_size <= 65536:
            raise ValueError(f"AJP packetSize must be in 8192..65536: {self.packet_size}")
        if self.https and self.https_port is None:
            self.https_port = free_port()
        for path in self.contexts:
            if not re.fullmatch(r"/[A-Za-z0-9_-]+", path) or path in ("/app", "/examples"):
                raise ValueError(
                    f"extra context path must be /NAME (not /app or /examples): {path!r}"
                )
        if self.base_dir is None:
            self.base_dir = Path(tempfile.mkdtemp(prefix=f"tomcat-{self.name}-"))

    # -- paths ---------------------------------------------------------------------------

    @property
    def conf_dir(self) -> Path:
        """C{CATALINA_BASE/conf}."""
        return self.base_dir / "conf"

    @property
    def logs_dir(self) -> Path:
        """C{CATALINA_BASE/logs}."""
        return self.base_dir / "logs"

    @property
    def catalina_out(self) -> Path:
        """The file receiving the JVM's stdout/stderr (and the console log handler)."""
        return self.logs_dir / "catalina.out"

    @property
    def pid_file(self) -> Path:
        """C{CATALINA_PID}."""
        return self.base_dir / "catalina.pid"

    @property
    def cert_file(self) -> Path:
        """The HTTPS certificate (PEM), when C{https}."""
        return self.conf_dir / "tls" / "cert.pem"

    @property
    def key_file(self) -> Path:
        """The HTTPS private key (PEM), when C{https}."""
        return self.conf_dir / "tls" / "key.pem"

    # -- URLs ----------------------------------------------------------------------------

    @property
    def route(self) -> str:
        """The C{jvmRoute} (same as C{name}): the session id suffix after the dot."""
        return self.name

    @property
    def http_url(self) -> str:
        """C{http://127.0.0.1:PORT} (no trailing slash)."""
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def https_url(self) -> str | None:
        """C{https://127.0.0.1:PORT}, or C{None} without HTTPS."""
        return f"https://{LOOPBACK}:{self.https_port}" if self.https else None

    @property
    def ajp_url(self) -> str:
        """C{ajp://127.0.0.1:PORT}."""
        return f"ajp://{LOOPBACK}:{self.ajp_port}"

    @property
    def ws_url(self) -> str:
        """C{ws://127.0.0.1:PORT/app/ws}."""
        return f"ws://{LOOPBACK}:{self.http_port}/app/ws"

    @property
    def cluster_member(self) -> ClusterMember:
        """This node as a static member for its peers."""
        return ClusterMember(self.name, self.cluster_port, self.unique_id)

    # -- state ---------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The JVM's PID while it runs (a paused JVM runs), else C{None}."""
        return self._pid if self.running else None

    @property
    def running(self) -> bool:
        """Whether our JVM exists and is not a zombie (checked in C{/proc}, not by C{kill -0})."""
        if self._pid is None:
            return False
        stat = _proc_stat(self._pid)
        if stat is None:
            return False
        state, start = stat
        if self._pid_start is not None and start != self._pid_start:
            return False  # the PID was reused by another process
        return state not in ("Z", "X", "x")

    @property
    def paused(self) -> bool:
        """Whether L{pause} stopped the JVM (and L{resume} did not continue it yet)."""
        return self._paused and self.running

    def log_tail(self, n: int = 60) -> str:
        """The last C{n} lines of C{catalina.out} and of the newest C{localhost.*.log}."""
        parts = [f"--- {self.catalina_out} ---", *_tail(self.catalina_out, n)]
        localhost_logs = sorted(self.logs_dir.glob("localhost.*.log"))
        if localhost_logs:
            lines = _tail(localhost_logs[-1], n)
            if lines:
                parts += [f"--- {localhost_logs[-1]} ---", *lines]
        return "\n".join(parts)

    def log_since_start(self) -> str:
        """What the JVM wrote to C{catalina.out} since the last L{launch}."""
        try:
            with self.catalina_out.open("rb") as f:
                f.seek(self._out_offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def attribute_log(self) -> list[dict[str, str]]:
        """The requests this node logged in C{logs/attributes.log}, oldest first, as dicts
        keyed by the names of L{ATTRIBUTE_LOG_FIELDS}."""
        try:
            text = (self.logs_dir / "attributes.log").read_text("utf-8", "replace")
        except OSError:
            return []
        names = [name for name, _ in ATTRIBUTE_LOG_FIELDS]
        return [dict(zip(names, line.split("|"), strict=False)) for line in text.splitlines()]

    # -- configuration -------------------------------------------------------------------

    def _connector(self, attributes: dict[str, str], extra: dict[str, str], body: str = "") -> str:
        merged = {**attributes, **extra}
        attrs_text = "".join(f"\n               {k}={quoteattr(str(v))}" for k, v in merged.items())
        if body:
            return f"    <Connector{attrs_text}>\n{body}    </Connector>\n"
        return f"    <Connector{attrs_text} />\n"

    def _cluster_xml(self) -> str:
        members = "".join(
            '            <Member className="org.apache.catalina.tribes.membership.StaticMember"'
            f' host={quoteattr(peer.host)} port="{peer.port}"'
            f" uniqueId={quoteattr(peer.unique_id)} />\n"
            for peer in self.cluster_peers
        )
        return f"""\
      <Cluster className="org.apache.catalina.ha.tcp.SimpleTcpCluster" channelSendOptions="6">
        <Manager className="org.apache.catalina.ha.session.DeltaManager"
                 expireSessionsOnShutdown="false"
                 notifyListenersOnReplication="true"
                 stateTransferTimeout="10" />
        <Channel className="org.apache.catalina.tribes.group.GroupChannel">
          <Membership className="org.apache.catalina.tribes.membership.StaticMembershipService"
                      connectTimeout="500" expirationTime="5000" pingInterval="1000">
            <LocalMember className="org.apache.catalina.tribes.membership.StaticMember"
                         uniqueId={quoteattr(self.unique_id)} />
{members}          </Membership>
          <Receiver className="org.apache.catalina.tribes.transport.nio.NioReceiver"
                    address="{LOOPBACK}" port="{self.cluster_port}" autoBind="1"
                    selectorTimeout="100" maxThreads="6" />
          <Sender className="org.apache.catalina.tribes.transport.ReplicationTransmitter">
            <Transport className="org.apache.catalina.tribes.transport.nio.PooledParallelSender"
                       timeout="5000" />
          </Sender>
          <Interceptor className="org.apache.catalina.tribes.group.interceptors.TcpPingInterceptor"
                       interval="1000" />
          <Interceptor className="org.apache.catalina.tribes.group.interceptors.TcpFailureDetector"
                       connectTimeout="500" />
          <Interceptor className="org.apache.catalina.tribes.group.interceptors.MessageDispatchInterceptor" />
        </Channel>
        <Valve className="org.apache.catalina.ha.tcp.ReplicationValve" filter="" />
        <Valve className="org.apache.catalina.ha.session.JvmRouteBinderValve" />
        <ClusterListener className="org.apache.catalina.ha.session.ClusterSessionListener" />
      </Cluster>
"""

    def server_xml(self) -> str:
        """The C{server.xml} text for this node's current settings."""
        common = {"address": LOOPBACK, "allowTrace": "true" if self.allow_trace else "false"}
        redirect = {"redirectPort": str(self.https_port)} if self.https else {}
        connectors = self._connector(
            {
                "protocol": "HTTP/1.1",
                "port": str(self.http_port),
                **common,
                "connectionTimeout": "20000",
                **redirect,
            },
            self.http_connector_attrs,
        )
        connectors += self._connector(
            {
                "protocol": "AJP/1.3",
                "port": str(self.ajp_port),
                **common,
                "secret": self.ajp_secret,
                "secretRequired": "true",
                "packetSize": str(self.packet_size),
                "connectionTimeout": "60000",
                **redirect,
            },
            self.ajp_connector_attrs,
        )
        if self.https:
            connectors += self._connector(
                {
                    "protocol": "org.apache.coyote.http11.Http11NioProtocol",
                    "port": str(self.https_port),
                    **common,
                    "SSLEnabled": "true",
                    "scheme": "https",
                    "secure": "true",
                    "connectionTimeout": "20000",
                },
                self.https_connector_attrs,
                body=(
                    "      <SSLHostConfig>\n"
                    f"        <Certificate certificateFile={quoteattr(str(self.cert_file))}\n"
                    f"                     certificateKeyFile={quoteattr(str(self.key_file))}\n"
                    '                     type="RSA" />\n'
                    "      </SSLHostConfig>\n"
                ),
            )
        cluster = self._cluster_xml() if self.clustered else ""
        return f"""\
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by tests/interop/tomcat.py for node {self.name}; the shutdown port is disabled. -->
<Server port="-1" shutdown="SHUTDOWN">
  <Listener className="org.apache.catalina.startup.VersionLoggerListener" />
  <Service name="Catalina">
{connectors}    <Engine name="Catalina" defaultHost="localhost" jvmRoute={quoteattr(self.name)}>
{cluster}      <Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false"
            deployOnStartup="true">
        <Valve className="org.apache.catalina.valves.AccessLogValve" directory="logs"
               prefix="access" suffix=".log" buffered="false"
               pattern="%h %l %u %t &quot;%r&quot; %s %b %D %S" />
        <Valve className="org.apache.catalina.valves.AccessLogValve" directory="logs"
               prefix="attributes" suffix=".log" rotatable="false" buffered="false"
               pattern={quoteattr(ATTRIBUTE_LOG_PATTERN)} />
      </Host>
    </Engine>
  </Service>
</Server>
"""

    def app_context_xml(self) -> str:
        """The C{conf/Catalina/localhost/app.xml} context file for the test webapp."""
        # No <Manager> for a clustered node: it would silently win over the cluster's
        # DeltaManager. Without a cluster, pathname="" stops StandardManager from saving the
        # sessions to work/.../SESSIONS.ser on a graceful stop and restoring them on start.
        manager = ""
        if not self.clustered and not self.persist_sessions:
            manager = (
                '  <Manager className="org.apache.catalina.session.StandardManager"'
                ' pathname="" />\n'
            )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<Context docBase={quoteattr(str(self.webapp))} useRelativeRedirects="false"\n'
            '         reloadable="false">\n'
            f"{manager}"
            "</Context>\n"
        )

    def context_xml(self) -> str:
        """The global C{conf/context.xml} (deliberately without any C{<Manager>})."""
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            "<Context>\n"
            "  <WatchedResource>WEB-INF/web.xml</WatchedResource>\n"
            "</Context>\n"
        )

    def write_base(self) -> None:
        """(Re)write the C{CATALINA_BASE}: C{conf/} from the templates plus our own files."""
        templates = _templates_dir(self.catalina_home)
        for sub in ("conf", "logs", "temp", "work", "webapps", "conf/Catalina/localhost"):
            (self.base_dir / sub).mkdir(parents=True, exist_ok=True)
        for item in templates.iterdir():
            if item.is_file():
                shutil.copyfile(item, self.conf_dir / item.name)
        (self.conf_dir / "server.xml").write_text(self.server_xml())
        (self.conf_dir / "context.xml").write_text(self.context_xml())
        localhost = self.conf_dir / "Catalina" / "localhost"
        (localhost / "app.xml").write_text(self.app_context_xml())
        for path in self.contexts:
            (localhost / f"{path[1:]}.xml").write_text(self.app_context_xml())
        examples = localhost / "examples.xml"
        if self.examples and (EXAMPLES_DOCBASE / "WEB-INF" / "web.xml").is_file():
            examples.write_text(
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<Context docBase={quoteattr(str(EXAMPLES_DOCBASE))} reloadable="false" />\n'
            )
        elif examples.exists():
            examples.unlink()
        if self.https and not (self.cert_file.is_file() and self.key_file.is_file()):
            make_self_signed_cert(self.cert_file, self.key_file)

    # -- lifecycle -----------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("JAVA_OPTS", "CATALINA_OPTS")}
        opts = [
            f"-Dnode={self.name}",
            "-Xms64m",
            f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Xshare:auto",
            "-Djava.security.egd=file:/dev/./urandom",
            "-Djava.net.preferIPv4Stack=true",
            *self.extra_java_opts,
        ]
        env.update(
            CATALINA_HOME=str(self.catalina_home),
            CATALINA_BASE=str(self.base_dir),
            CATALINA_PID=str(self.pid_file),
            CATALINA_OUT=str(self.catalina_out),
            CATALINA_TMPDIR=str(self.base_dir / "temp"),
            CATALINA_OPTS=" ".join(opts),
        )
        return env

    def launch(self) -> None:
        """Write the base and run C{catalina.sh start}; do not wait for readiness.

        Use L{wait_ready} next (L{start} does both).
        """
        if self.running:
            raise TomcatError(f"{self.name}: already running as PID {self._pid}")
        self.write_base()
        # A stale PID file makes catalina.sh refuse to start when that PID is still listed
        # by ps (e.g. a zombie of the previous JVM).
        self.pid_file.unlink(missing_ok=True)
        try:
            self._out_offset = self.catalina_out.stat().st_size
        except OSError:
            self._out_offset = 0
        self._paused = False
        proc = subprocess.run(
            [str(self.catalina_home / "bin" / "catalina.sh"), "start"],
            env=self._environment(),
            cwd=self.base_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        deadline = time.monotonic() + 5
        pid_text = ""
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                pid_text = self.pid_file.read_text().strip()
            if pid_text:
                break
            time.sleep(0.05)
        if proc.returncode != 0 or not pid_text.isdigit():
            raise TomcatError(
                f"{self.name}: catalina.sh start failed (rc={proc.returncode}, "
                f"pid file {pid_text!r}):\n{proc.stdout}\n{proc.stderr}\n{self.log_tail()}"
            )
        self._pid = int(pid_text)
        if self not in _LAUNCHED:
            _LAUNCHED.append(self)
        stat = _proc_stat(self._pid)
        self._pid_start = stat[1] if stat else None

    def probe(self, timeout: float = 2.0) -> bool:
        """Whether the node answers right now: C{GET /app/echo} is 200 from this node over HTTP,
        the AJP port accepts TCP, and (with HTTPS) a TLS handshake succeeds."""
        try:
            res = http_request(self.http_port, "/app/echo?probe=1", timeout=timeout)
            if res.status != 200 or res.json().get("node") != self.name:
                return False
        except (OSError, http.client.HTTPException, ValueError):
            return False
        if not _port_accepts(self.ajp_port, timeout):
            return False
        if self.https:
            assert self.https_port is not None
            try:
                with socket.create_connection((LOOPBACK, self.https_port), timeout=timeout) as s:
                    with _insecure_tls_context().wrap_socket(s, server_hostname="localhost"):
                        pass
            except (OSError, ssl.SSLError):
                return False
        return True

    def wait_ready(self, timeout: float = 60.0, started_at: float | None = None) -> float:
        """Wait until L{probe} succeeds; raise L{TomcatError} with the logs on timeout or if
        the JVM dies.

        @return: the seconds since C{started_at} (or since the call).
        """
        t0 = started_at if started_at is not None else time.monotonic()
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise TomcatError(
                    f"{self.name}: the JVM (PID {self._pid}) exited during startup\n"
                    f"{self.log_tail()}"
                )
            if self.probe(timeout=min(2.0, max(0.2, deadline - time.monotonic()))):
                self.last_start_seconds = time.monotonic() - t0
                return self.last_start_seconds
            if time.monotonic() >= deadline:
                raise TomcatError(
                    f"{self.name}: not ready within {timeout:.0f}s (PID {self._pid})\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.1)

    def start(self, timeout: float = 60.0) -> float:
        """Launch the node and wait until it answers; return the seconds it took."""
        t0 = time.monotonic()
        self.launch()
        try:
            return self.wait_ready(timeout, started_at=t0)
        except BaseException:
            self.kill()
            raise

    def _wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.running:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _forget(self) -> None:
        self._pid = None
        self._pid_start = None
        self._paused = False
        self.pid_file.unlink(missing_ok=True)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop gracefully: SIGTERM (after SIGCONT if paused), then SIGKILL after C{timeout}."""
        if not self.running:
            self._forget()
            return
        assert self._pid is not None
        if self._paused:
            _send_signal(self._pid, signal.SIGCONT)
        _send_signal(self._pid, signal.SIGTERM)
        if not self._wait_gone(timeout):
            _send_signal(self._pid, signal.SIGKILL)
            if not self._wait_gone(10):
                raise TomcatError(f"{self.name}: PID {self._pid} survived SIGKILL")
        self._forget()

    def kill(self) -> None:
        """SIGKILL the JVM right away (a crash, for failover tests) and wait until it is gone."""
        if not self.running:
            self._forget()
            return
        assert self._pid is not None
        _send_signal(self._pid, signal.SIGKILL)
        if not self._wait_gone(10):
            raise TomcatError(f"{self.name}: PID {self._pid} survived SIGKILL")
        self._forget()

    def pause(self) -> None:
        """SIGSTOP the JVM: its ports still accept TCP connections but nothing answers."""
        if not self.running:
            raise TomcatError(f"{self.name}: not running")
        assert self._pid is not None
        _send_signal(self._pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT a paused JVM."""
        if self._pid is not None and self.running:
            _send_signal(self._pid, signal.SIGCONT)
        self._paused = False

    def restart(self, timeout: float = 60.0) -> float:
        """L{stop} then L{start}; return the start's seconds."""
        self.stop()
        return self.start(timeout)

    def ensure_running(self, timeout: float = 60.0) -> bool:
        """Resume the node if paused and start it if it is not running.

        @return: whether it had to be (re)started.
        """
        if self._paused:
            self.resume()
        if self.running:
            return False
        self.start(timeout)
        return True

    def warm_up(self) -> None:
        """Hit C{/app/session.jsp} once so that Jasper compiles it before anything is timed."""
        res = http_request(self.http_port, "/app/session.jsp", timeout=60)
        if res.status != 200:
            raise TomcatError(f"{self.name}: session.jsp answered {res.status}: {res.body[:500]!r}")
        for path in self.contexts:
            res = http_request(self.http_port, f"{path}/echo", timeout=30)
            if res.status != 200:
                raise TomcatError(f"{self.name}: {path}/echo answered {res.status}")

    # -- convenience ---------------------------------------------------------------------

    def get(self, path: str, **kwargs: object) -> HttpResult:
        """L{http_request} to this node's HTTP connector."""
        return http_request(self.http_port, path, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Groups of nodes


def start_nodes(nodes: Sequence[TomcatNode], timeout: float = 60.0) -> float:
    """Start independent (non-clustered) nodes at the same time.

    On failure every node of the group is killed before the error propagates.

    @return: the seconds until all were ready.
    """
    t0 = time.monotonic()
    try:
        for node in nodes:
            node.launch()
        for node in nodes:
            node.wait_ready(max(1.0, timeout - (time.monotonic() - t0)), started_at=t0)
    except BaseException:
        for node in nodes:
            with contextlib.suppress(Exception):
                node.kill()
        raise
    return time.monotonic() - t0


def stop_nodes(nodes: Iterable[TomcatNode], timeout: float = 15.0) -> None:
    """Stop nodes concurrently (SIGTERM all, then wait; SIGKILL stragglers).

    A clustered node whose peer is gone may take a while to shut down, so all are signalled
    first.
    """
    nodes = list(nodes)
    pids = [n.pid for n in nodes]
    threads = [threading.Thread(target=n.stop, args=(timeout,), daemon=True) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 15)
    for node in nodes:
        if node.running:
            node.kill()
    # The JVMs are not our children (catalina.sh start daemonizes them): init reaps them a
    # moment later. Give it that moment so that no <defunct> java outlives the caller.
    deadline = time.monotonic() + 3
    for pid in pids:
        while pid is not None and _proc_stat(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)


def link_cluster(nodes: Sequence[TomcatNode]) -> None:
    """Make C{nodes} one replication cluster with static membership (each lists the others)."""
    for node in nodes:
        node.clustered = True
        node.cluster_peers = [o.cluster_member for o in nodes if o is not node]


def _session_cookie(res: HttpResult) -> str | None:
    return res.cookie("JSESSIONID")


def wait_for_replication(nodes: Sequence[TomcatNode], timeout: float = 60.0) -> float:
    """Wait until a session created on each node is continued on every other node.

    For each ordered pair (a, b): create a session on a (C{/app/session}), send its cookie to
    b, and expect the counter to continue (2). Retries with fresh sessions until C{timeout}.

    @return: the seconds it took.
    """
    t0 = time.monotonic()
    deadline = t0 + timeout
    last = ""
    for a in nodes:
        for b in nodes:
            if a is b:
                continue
            while True:
                try:
                    first = http_request(a.http_port, "/app/session", timeout=5)
                    cookie = _session_cookie(first)
                    if first.status == 200 and cookie:
                        second = http_request(
                            b.http_port,
                            "/app/session",
                            headers={"Cookie": f"JSESSIONID={cookie}"},
                            timeout=5,
                        )
                        if second.status == 200 and second.json().get("counter") == 2:
                            break
                        last = f"{b.name} answered {second.status} {second.body[:200]!r}"
                    else:
                        last = f"{a.name} answered {first.status} {first.body[:200]!r}"
                except (OSError, http.client.HTTPException, ValueError) as e:
                    last = repr(e)
                if time.monotonic() >= deadline:
                    logs = "\n".join(n.log_tail(40) for n in nodes)
                    raise TomcatError(
                        f"session replication {a.name} -> {b.name} not established within "
                        f"{timeout:.0f}s (last: {last})\n{logs}"
                    )
                time.sleep(0.25)
    return time.monotonic() - t0


def start_cluster(
    nodes: Sequence[TomcatNode], timeout: float = 90.0, *, link: bool = True
) -> float:
    """Start replicated nodes one after the other, then wait for replication both ways.

    Simultaneous starts can stall state transfer (each node asks the other for its sessions),
    so each node is started only when the previous one answers.

    @param link: call L{link_cluster} first.
    @return: the seconds until the cluster replicated sessions.
    """
    if link:
        link_cluster(nodes)
    t0 = time.monotonic()
    try:
        for node in nodes:
            if not node.running:
                node.start(max(1.0, timeout - (time.monotonic() - t0)))
        wait_for_replication(nodes, max(1.0, timeout - (time.monotonic() - t0)))
    except BaseException:
        for node in nodes:
            with contextlib.suppress(Exception):
                node.kill()
        raise
    return time.monotonic() - t0


@attrs.define(eq=False)
class TomcatGroup:
    """Nodes started and stopped together: what the pytest fixtures yield.

    Iterable and indexable by position or by name, so C{a, b = group} and C{group["tomcat2"]}
    both work.

    @ivar nodes: the nodes, in start order.
    @ivar clustered: whether they replicate sessions (start one after the other, and after a
        restart wait until replication works again).
    """

    nodes: list[TomcatNode]
    clustered: bool = False
    start_seconds: float | None = None

    def __iter__(self) -> Iterator[TomcatNode]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, key: int | str) -> TomcatNode:
        if isinstance(key, str):
            for node in self.nodes:
                if node.name == key:
                    return node
            raise KeyError(key)
        return self.nodes[key]

    @property
    def names(self) -> list[str]:
        """The node names (= jvmRoutes), in order."""
        return [n.name for n in self.nodes]

    def start(self, timeout: float = 90.0) -> float:
        """Start every node (clusters one after the other, with a replication check) and warm
        each up; return the seconds until all were ready."""
        if self.clustered:
            self.start_seconds = start_cluster(self.nodes, timeout)
        else:
            self.start_seconds = start_nodes(self.nodes, timeout)
        for node in self.nodes:
            node.warm_up()
        return self.start_seconds

    def stop(self, timeout: float = 15.0) -> None:
        """Stop every node (see L{stop_nodes})."""
        stop_nodes(self.nodes, timeout)

    def ensure_running(self, timeout: float = 60.0) -> list[str]:
        """Resume paused nodes and restart dead ones (then, for a cluster, wait for
        replication); return the names of the restarted nodes."""
        restarted = [n.name for n in self.nodes if n.ensure_running(timeout)]
        if restarted and self.clustered:
            wait_for_replication(self.nodes, timeout)
        return restarted
