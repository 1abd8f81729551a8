"""The twisted_lb benchmark: ``python -m tests.bench.run [--quick] [--duration S] [--out FILE]``.

Starts two Tomcat 10 nodes (AJP with a secret + HTTP + HTTPS connectors, the interop test
webapp at /app), then, for the same requests, interleaved within one run, measures with wrk:

  direct      Tomcat's HTTP(S) connector of node tomcat1 (the ceiling; no proxy)
  apache      Apache httpd: mod_proxy_balancer + mod_proxy_ajp (+ mod_ssl) to both nodes
  tlb-ajp     twisted_lb, AJP balancer of both nodes
  tlb-http    twisted_lb, HTTP balancer of both nodes' HTTP connectors
  twisted-rp  twisted.web.proxy.ReverseProxyResource to tomcat1 (the Python baseline)

Scenarios: a 1 KiB static file, a JSP with a session (sticky), a 1 MiB response, a 1 MiB
upload (POST to /app/echo); plain HTTP and HTTPS on the frontend; 1, 32 and 256 connections.
It prints requests/s, p50/p99 latency, MB/s, the proxy's CPU seconds per 1 000 requests (and the
two Tomcats', which depend on the proxy in front of them), and the twisted_lb figures as ratios to Apache's and to direct Tomcat's; everything also goes to JSON.

Needs Debian's tomcat10 (and a JDK), wrk and (for the anchor) apache2; installs nothing.
Not part of the test run (no test_*.py here). See docs/performance.md.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from tests.bench.apache import ApacheProcess, find_apache, missing_modules
from tests.bench.wrk import find_wrk, lua_script, run_wrk
from tests.interop.proxy_process import ProxyProcess, child_pids
from tests.interop.tomcat import (
    AJP_CONNECTORS,
    LOOPBACK,
    TomcatError,
    TomcatGroup,
    TomcatNode,
    _port_accepts,
    build_webapp,
    free_port,
    http_request,
    missing_prerequisites,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SECRET = "bench-s3cr3t"
MIB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")

# --------------------------------------------------------------------------------------------
# What is measured


@attrs.frozen
class Scenario:
    name: str
    path: str
    method: str = "GET"
    body_bytes: int = 0
    sticky: bool = False  # send JSESSIONID cookies obtained through the target
    min_response_bytes: int = 0  # sanity check: wrk's bytes read per request at least this
    #: at 256 connections a 1 MiB case moves 256 MiB per round: measure at least this long
    min_duration_256: float = 0.0


SCENARIOS = {
    "static-1k": Scenario("static-1k", "/app/static/1k.txt", min_response_bytes=1024),
    "jsp-session": Scenario("jsp-session", "/app/session.jsp", sticky=True),
    "get-1m": Scenario(
        "get-1m", f"/app/big?bytes={MIB}", min_response_bytes=MIB, min_duration_256=10.0
    ),
    "post-1m": Scenario(
        "post-1m", "/app/echo", method="POST", body_bytes=MIB, min_duration_256=10.0
    ),
}

TARGET_ORDER = ["direct", "apache", "tlb-ajp", "tlb-http", "twisted-rp"]
TLB_TARGETS = ["tlb-ajp", "tlb-http"]


@attrs.define
class Target:
    name: str
    http_port: int
    https_port: int | None
    #: the PIDs whose CPU counts as "the proxy" (None: not a proxy)
    cpu_pids: Callable[[], list[int]] | None
    description: str = ""

    def url(self, tls: bool) -> str | None:
        if tls:
            return f"https://{LOOPBACK}:{self.https_port}" if self.https_port else None
        return f"http://{LOOPBACK}:{self.http_port}"


# --------------------------------------------------------------------------------------------
# CPU accounting from /proc


def _proc_cpu_ticks(pid: int) -> int:
    """utime + stime + cutime + cstime of C{pid} (reaped children count in the parent)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    rest = raw[raw.rfind(")") + 2 :].split()
    # fields 14..17 of stat are rest[11..14]
    return sum(int(x) for x in rest[11:15])


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    return {pid: _proc_cpu_ticks(pid) / CLK_TCK for pid in pids}


def system_busy_seconds() -> float:
    """CPU seconds the whole machine (all CPUs) spent in processes (user, nice, system, steal),
    from C{/proc/stat}. Interrupt and softirq time (loopback TCP is largely softirq work, i.e.
    the benchmark's own traffic) is left out: it belongs to no process."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + steal) / CLK_TCK


def children_cpu_seconds() -> float:
    """CPU seconds of this process's reaped children (wrk)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two samples; a process gone since is counted in its parent's
    cutime/cstime (for Apache's children), so only its earlier sample is subtracted."""
    total = sum(after.values())
    total -= sum(v for pid, v in before.items())
    return max(0.0, total)


# --------------------------------------------------------------------------------------------
# Everything started, stopped by PID


class Stack:
    """The processes of one benchmark run; L{stop} stops each by PID, once."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.group: TomcatGroup | None = None
        self.apache: ApacheProcess | None = None
        self.proxies: dict[str, ProxyProcess] = {}
        self.baseline: subprocess.Popen[bytes] | None = None
        self._baseline_out: object | None = None
        self._stopped = False

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for proxy in self.proxies.values():
            with contextlib.suppress(Exception):
                proxy.stop()
        if self.baseline is not None and self.baseline.poll() is None:
            with contextlib.suppress(Exception):
                self.baseline.terminate()
                try:
                    self.baseline.wait(10)
                except subprocess.TimeoutExpired:
                    self.baseline.kill()
                    self.baseline.wait(5)
        with contextlib.suppress(Exception):
            if self._baseline_out is not None:
                self._baseline_out.close()  # type: ignore[attr-defined]
        if self.apache is not None:
            with contextlib.suppress(Exception):
                self.apache.stop()
        if self.group is not None:
            with contextlib.suppress(Exception):
                self.group.stop()


def _tlb_config(
    port: int,
    tls_port: int,
    cert: Path,
    key: Path,
    members: list[dict[str, object]],
    workers: str = "auto",
) -> str:
    def q(v: object) -> str:
        return json.dumps(v) if isinstance(v, str) else str(v)

    lines = [
        "timeout = 60",
        f"workers = {q(workers if workers == 'auto' else int(workers))}",
        "[[listen]]",
        f'endpoint = "tcp:{port}:interface={LOOPBACK}:backlog=511"',
        "[[listen]]",
        f'endpoint = "tcp:{tls_port}:interface={LOOPBACK}:backlog=511"',
        f"tls = {{ certificate = {q(str(cert))}, key = {q(str(key))} }}",
        "[balancers.app]",
        'stickysession = "JSESSIONID|jsessionid"',
    ]
    for m in members:
        lines.append("[[balancers.app.members]]")
        lines += [f"{k} = {q(v)}" for k, v in m.items()]
    lines += ["[[routes]]", 'path = "/app"', 'balancer = "app"']
    return "\n".join(lines) + "\n"


def start_stack(stack: Stack, args: argparse.Namespace, log: Callable[[str], None]) -> dict:
    """Start Tomcat ×2, Apache, twisted_lb ×2 and the baseline; return the targets."""
    work = stack.workdir
    cache = Path(
        os.environ.get("LB_INTEROP_CACHE") or Path(tempfile.gettempdir()) / "lb-bench-webapp"
    )
    webapp = build_webapp(cache)
    from twisted_lb.tls import make_self_signed

    cert, key = work / "cert.pem", work / "key.pem"
    make_self_signed(cert, key)

    connector = {"maxKeepAliveRequests": "-1", "acceptCount": "511", "maxThreads": "300"}
    nodes = [
        TomcatNode(
            name,
            webapp,
            base_dir=work / name,
            https=True,
            ajp_secret=SECRET,
            examples=False,
            heap=args.tomcat_heap,
            # TomcatNode stops at C1 for quick test startups; a benchmark wants the full JIT
            # (C2: the AES-GCM intrinsics, for one, matter for the HTTPS connector).
            extra_java_opts=["-XX:TieredStopAtLevel=4"],
            http_connector_attrs=dict(connector),
            https_connector_attrs=dict(connector),
            ajp_connector_attrs={
                "acceptCount": "511",
                "maxThreads": "300",
                "protocol": AJP_CONNECTORS[args.ajp_connector],
            },
            packet_size=args.packet_size,
        )
        for name in ("tomcat1", "tomcat2")
    ]
    stack.group = TomcatGroup(nodes)
    t0 = time.monotonic()
    stack.group.start(timeout=180)
    log(f"Tomcat nodes up in {time.monotonic() - t0:.1f} s")
    n1, n2 = nodes

    targets: dict[str, Target] = {
        "direct": Target(
            "direct", n1.http_port, n1.https_port, None, "Tomcat tomcat1 HTTP(S) connector"
        ),
    }

    if "apache" in args.targets:
        reason = None
        if find_apache() is None:
            reason = "apache2 not found"
        elif missing_modules():
            reason = f"Apache modules missing: {', '.join(missing_modules())}"
        if reason:
            log(f"WARNING: no Apache anchor: {reason}")
        else:
            apache_dir = work / "apache"
            apache_dir.mkdir()
            stack.apache = ApacheProcess(
                apache_dir,
                http_port=free_port(),
                https_port=free_port(),
                members=[(n.name, n.ajp_port) for n in nodes],
                secret=SECRET,
                cert=cert,
                key=key,
                packet_size=args.packet_size,
            )
            stack.apache.start()
            apache = stack.apache

            def apache_pids() -> list[int]:
                pid = apache.pid
                return [pid, *child_pids(pid)] if pid else []

            targets["apache"] = Target(
                "apache",
                apache.http_port,
                apache.https_port,
                apache_pids,
                "Apache httpd mod_proxy_balancer + mod_proxy_ajp (event MPM)",
            )
            log("Apache httpd up")

    member_sets = {
        "tlb-ajp": [
            {
                "url": f"ajp://{LOOPBACK}:{n.ajp_port}/app",
                "route": n.name,
                "secret": SECRET,
                "packet_size": args.packet_size,
            }
            for n in nodes
        ],
        "tlb-http": [
            {"url": f"http://{LOOPBACK}:{n.http_port}/app", "route": n.name} for n in nodes
        ],
    }
    for name, members in member_sets.items():
        if name not in args.targets:
            continue
        pdir = work / name
        pdir.mkdir()
        port, tls_port = free_port(), free_port()
        proxy = ProxyProcess(pdir, _tlb_config(port, tls_port, cert, key, members, args.workers))
        stack.proxies[name] = proxy
        proxy.start([port, tls_port], timeout=30)
        targets[name] = Target(
            name,
            port,
            tls_port,
            # with workers > 1, twistd supervises and the workers do the work
            (lambda p=proxy: [p.pid, *child_pids(p.pid)] if p.pid else []),
            f"twisted_lb {'AJP' if name == 'tlb-ajp' else 'HTTP'} balancer",
        )
        log(f"{name} up (PID {proxy.pid})")

    if "twisted-rp" in args.targets:
        port, tls_port = free_port(), free_port()
        out = open(work / "twisted-rp.log", "ab")  # noqa: SIM115
        stack._baseline_out = out
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        stack.baseline = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "twisted_baseline.py"),
                "--backend-port",
                str(n1.http_port),
                "--port",
                str(port),
                "--tls-port",
                str(tls_port),
                "--cert",
                str(cert),
                "--key",
                str(key),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
        )
        deadline = time.monotonic() + 30
        while not (_port_accepts(port) and _port_accepts(tls_port)):
            if stack.baseline.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "twisted-rp baseline did not start:\n"
                    + (work / "twisted-rp.log").read_text(errors="replace")
                )
            time.sleep(0.1)
        base = stack.baseline
        targets["twisted-rp"] = Target(
            "twisted-rp",
            port,
            tls_port,
            lambda: [base.pid] if base.poll() is None else [],
            "twisted.web.proxy.ReverseProxyResource to tomcat1",
        )
        log(f"twisted-rp up (PID {base.pid})")

    ordered = {name: targets[name] for name in TARGET_ORDER if name in targets}
    return ordered


# --------------------------------------------------------------------------------------------
# Running


def sticky_cookies(target: Target, tls: bool, wanted: int = 2) -> list[str]:
    """Open sessions through the target (session.jsp) until C{wanted} cookies with distinct
    routes are found (or 6 tries); return C{Cookie} header values."""
    port = target.https_port if tls else target.http_port
    assert port is not None
    found: dict[str, str] = {}
    any_cookies: list[str] = []
    for _ in range(6):
        res = http_request(port, "/app/session.jsp", tls=tls, timeout=30)
        if res.status != 200:
            raise RuntimeError(f"{target.name}: session.jsp answered {res.status}")
        cookie = res.cookie("JSESSIONID")
        if not cookie:
            raise RuntimeError(f"{target.name}: session.jsp set no JSESSIONID")
        any_cookies.append(cookie)
        found.setdefault(cookie.rpartition(".")[2], cookie)
        if len(found) >= wanted:
            break
    cookies = list(found.values())
    while len(cookies) < wanted:
        cookies.append(any_cookies[len(cookies) % len(any_cookies)])
    return [f"JSESSIONID={c}" for c in cookies]


def measure(
    target: Target,
    scenario: Scenario,
    tls: bool,
    connections: int,
    duration: float,
    warmup: float,
    scripts: Path,
    timeout_s: float,
    tomcat_pids: list[int],
) -> dict:
    url = target.url(tls)
    assert url is not None
    if connections >= 256:
        duration = max(duration, scenario.min_duration_256)
    cookies = sticky_cookies(target, tls) if scenario.sticky else None
    script = scripts / f"{scenario.name}-{target.name}-{'tls' if tls else 'plain'}.lua"
    script.write_text(
        lua_script(method=scenario.method, body_bytes=scenario.body_bytes, cookies=cookies)
    )
    full = url + scenario.path
    if warmup > 0:
        run_wrk(full, connections=connections, duration=warmup, script=script, timeout_s=timeout_s)
    pids = target.cpu_pids() if target.cpu_pids else []
    before = cpu_seconds(pids)
    tomcat_before = cpu_seconds(tomcat_pids)
    busy_before = system_busy_seconds()
    wrk_before = children_cpu_seconds()
    wall0 = time.monotonic()
    res = run_wrk(
        full, connections=connections, duration=duration, script=script, timeout_s=timeout_s
    )
    wall = time.monotonic() - wall0
    # Processes that appeared during the run (new Apache children) count from zero.
    after_pids = target.cpu_pids() if target.cpu_pids else []
    after = cpu_seconds(sorted(set(pids) | set(after_pids)))
    proxy_cpu = cpu_delta(before, after) if target.cpu_pids else None
    tomcat_cpu = cpu_delta(tomcat_before, cpu_seconds(tomcat_pids))
    wrk_cpu = children_cpu_seconds() - wrk_before
    busy = system_busy_seconds() - busy_before
    # CPU used by anything else on the machine (other jobs; our idle processes are ~0).
    foreign = max(0.0, busy - wrk_cpu - tomcat_cpu - (proxy_cpu or 0.0))
    ncpu = os.cpu_count() or 1

    secs = res["duration_us"] / 1e6 or duration
    n = res["requests"]
    socket_errors = res["connect"] + res["read"] + res["write"] + res["timeout"]
    read_mb = res["bytes"] / secs / 1e6
    up_mb = n * scenario.body_bytes / secs / 1e6
    bytes_per_req = res["bytes"] / n if n else 0
    flags = []
    if res["status"]:
        flags.append(f"{res['status']} non-2xx/3xx")
    if socket_errors:
        flags.append(
            f"socket errors connect={res['connect']} read={res['read']} "
            f"write={res['write']} timeout={res['timeout']}"
        )
    if n and scenario.min_response_bytes and bytes_per_req < scenario.min_response_bytes:
        flags.append(f"short responses ({bytes_per_req:.0f} B/request)")
    if n == 0:
        flags.append("no request completed")
    notes = []
    if foreign > 0.1 * wall * ncpu:
        notes.append(f"other load on the machine: {100 * foreign / (wall * ncpu):.0f}% of its CPU")
    return {
        "target": target.name,
        "scenario": scenario.name,
        "tls": tls,
        "connections": connections,
        "duration_s": secs,
        "wall_s": wall,
        "requests": n,
        "rps": n / secs,
        "p50_ms": res["p50_us"] / 1000,
        "p90_ms": res["p90_us"] / 1000,
        "p99_ms": res["p99_us"] / 1000,
        "mean_ms": res["mean_us"] / 1000,
        "max_ms": res["max_us"] / 1000,
        "read_MBps": read_mb,
        "upload_MBps": up_mb,
        "MBps": read_mb + up_mb,
        "bytes_per_request": bytes_per_req,
        "proxy_cpu_s": proxy_cpu,
        "proxy_cpu_s_per_1k": (proxy_cpu / n * 1000) if (proxy_cpu is not None and n) else None,
        "tomcat_cpu_s_per_1k": (tomcat_cpu / n * 1000) if n else None,
        "wrk_cpu_s": wrk_cpu,
        "machine_busy_share": busy / (wall * ncpu),
        "foreign_cpu_share": foreign / (wall * ncpu),
        "notes": notes,
        "errors": {
            "status": res["status"],
            "connect": res["connect"],
            "read": res["read"],
            "write": res["write"],
            "timeout": res["timeout"],
        },
        "flagged": bool(flags),
        "flags": flags,
        "wrk_command": res["command"],
        "wrk_output": res["output"],
    }


def aggregate(runs: list[dict]) -> dict:
    """Median over repeats of one (scenario, tls, connections, target)."""
    first = runs[0]
    out = {k: first[k] for k in ("target", "scenario", "tls", "connections")}

    def med(key: str) -> float | None:
        vals = [r[key] for r in runs if r[key] is not None]
        return statistics.median(vals) if vals else None

    for key in (
        "rps",
        "p50_ms",
        "p99_ms",
        "MBps",
        "read_MBps",
        "upload_MBps",
        "proxy_cpu_s_per_1k",
        "tomcat_cpu_s_per_1k",
    ):
        out[key] = med(key)
    out["requests"] = sum(r["requests"] for r in runs)
    out["errors"] = sum(sum(r["errors"].values()) for r in runs)
    out["flagged"] = any(r["flagged"] for r in runs)
    out["flags"] = sorted({f for r in runs for f in r["flags"]})
    out["foreign_cpu_share"] = max(r["foreign_cpu_share"] for r in runs)
    out["notes"] = sorted({f for r in runs for f in r["notes"]})
    out["repeats"] = len(runs)
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def ratios(rows: dict[str, dict]) -> dict[str, dict]:
    """For each twisted_lb target (and the baseline): its figures / Apache's and / direct's."""
    out: dict[str, dict] = {}
    for name in (*TLB_TARGETS, "twisted-rp"):
        row = rows.get(name)
        if row is None:
            continue
        r: dict[str, float | None] = {}
        for ref in ("apache", "direct"):
            other = rows.get(ref)
            for key in ("rps", "p50_ms", "p99_ms", "MBps", "proxy_cpu_s_per_1k"):
                if key == "proxy_cpu_s_per_1k" and ref == "direct":
                    continue
                r[f"{key}_vs_{ref}"] = ratio(row[key], other[key]) if other else None
        out[name] = r
    return out


# --------------------------------------------------------------------------------------------
# Printing


def _f(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def case_label(scenario: str, tls: bool, c: int) -> str:
    return f"{scenario} {'https' if tls else 'http'} c={c}"


def format_case(label: str, rows: dict[str, dict], rat: dict[str, dict]) -> str:
    lines = [
        f"{label}",
        f"  {'target':<11} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'MB/s':>8} "
        f"{'cpu s/1k':>8} {'tomcat':>8}  notes",
    ]
    for name, row in rows.items():
        lines.append(
            f"  {name:<11} {_f(row['rps'], '9.0f')} {_f(row['p50_ms'], '8.2f')} "
            f"{_f(row['p99_ms'], '8.2f')} {_f(row['MBps'], '8.1f')} "
            f"{_f(row['proxy_cpu_s_per_1k'], '8.3f')} {_f(row['tomcat_cpu_s_per_1k'], '8.3f')}  "
            + "; ".join(
                (["FLAGGED: " + "; ".join(row["flags"])] if row["flagged"] else []) + row["notes"]
            )
        )
    for name, r in rat.items():
        lines.append(
            f"  {name:<11} vs apache: req/s ×{_f(r.get('rps_vs_apache'), '.2f')}  "
            f"p50 ×{_f(r.get('p50_ms_vs_apache'), '.2f')}  p99 ×{_f(r.get('p99_ms_vs_apache'), '.2f')}  "
            f"MB/s ×{_f(r.get('MBps_vs_apache'), '.2f')}  cpu ×{_f(r.get('proxy_cpu_s_per_1k_vs_apache'), '.2f')}"
        )
        lines.append(
            f"  {'':<11} vs direct: req/s ×{_f(r.get('rps_vs_direct'), '.2f')}  "
            f"p50 ×{_f(r.get('p50_ms_vs_direct'), '.2f')}  p99 ×{_f(r.get('p99_ms_vs_direct'), '.2f')}  "
            f"MB/s ×{_f(r.get('MBps_vs_direct'), '.2f')}"
        )
    return "\n".join(lines)


def summary_table(cases: list[dict]) -> str:
    """One Markdown table with every case × target (what docs/performance.md shows)."""
    head = (
        "| case | target | req/s | p50 ms | p99 ms | MB/s | proxy CPU s/1k req | Tomcat CPU s/1k req "
        "| req/s vs Apache | req/s vs direct | p99 vs Apache | CPU vs Apache | notes |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    body = []
    for case in cases:
        for name, row in case["results"].items():
            r = case["ratios"].get(name, {})
            body.append(
                f"| {case['label']} | {name} | {_f(row['rps'], '.0f')} | {_f(row['p50_ms'], '.2f')} "
                f"| {_f(row['p99_ms'], '.2f')} | {_f(row['MBps'], '.1f')} "
                f"| {_f(row['proxy_cpu_s_per_1k'], '.3f')} | {_f(row['tomcat_cpu_s_per_1k'], '.3f')} "
                f"| {_f(r.get('rps_vs_apache'), '.2f')} | {_f(r.get('rps_vs_direct'), '.2f')} "
                f"| {_f(r.get('p99_ms_vs_apache'), '.2f')} "
                f"| {_f(r.get('proxy_cpu_s_per_1k_vs_apache'), '.2f')} "
                f"| {'; '.join((['FLAGGED: ' + '; '.join(row['flags'])] if row['flagged'] else []) + row['notes'])} |"
            )
    return head + "\n".join(body) + "\n"


# --------------------------------------------------------------------------------------------
# Machine


def _cmd_first_line(cmd: list[str]) -> str | None:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (p.stdout + p.stderr).strip()
    return text.splitlines()[0] if text else None


def machine_info() -> dict:
    cpu_model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    import twisted

    tomcat = None
    with contextlib.suppress(Exception):
        tomcat = _cmd_first_line(
            [
                "java",
                "-cp",
                "/usr/share/tomcat10/lib/catalina.jar:/usr/share/tomcat10/lib/tomcat-util.jar",
                "org.apache.catalina.util.ServerInfo",
            ]
        )
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_GiB": round(mem_kb / 1024 / 1024, 1) if mem_kb else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "apache": _cmd_first_line([find_apache() or "apache2", "-v"]),
        "wrk": _cmd_first_line(["wrk", "-v"]),
        "java": _cmd_first_line(["java", "-version"]),
        "tomcat": tomcat,
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench.run",
        description="Benchmark twisted_lb against Apache httpd and direct Tomcat (see docs/performance.md).",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small matrix: static-1k and get-1m, plain HTTP, 32 connections, 5 s each",
    )
    p.add_argument("--duration", type=float, help="seconds per measurement (default 10; --quick 5)")
    p.add_argument(
        "--warmup",
        type=float,
        help="seconds of untimed load before each measurement (default 2; --quick 1)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure each case this many times, interleaved (median kept)",
    )
    p.add_argument(
        "--out", type=Path, help="JSON results file (default: a new file in the temp directory)"
    )
    p.add_argument("--scenarios", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    p.add_argument("--connections", help="comma-separated, default 1,32,256")
    p.add_argument("--frontend", help="comma-separated subset of http,https")
    p.add_argument(
        "--targets",
        help=f"comma-separated subset of {','.join(TARGET_ORDER)} (direct is always run)",
    )
    p.add_argument("--wrk-timeout", type=float, default=10.0, help="wrk's per-request timeout (s)")
    p.add_argument("--tomcat-heap", default="512m")
    p.add_argument(
        "--workers",
        default="auto",
        help='twisted_lb\'s workers setting (default "auto": one process per core)',
    )
    p.add_argument(
        "--packet-size",
        type=int,
        default=8192,
        help="AJP packet size of Tomcat (packetSize), Apache (ProxyIOBufferSize) and twisted_lb",
    )
    p.add_argument(
        "--ajp-connector",
        choices=sorted(AJP_CONNECTORS),
        default="nio",
        help="Tomcat's AJP connector implementation (default nio, Tomcat's own default)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs)")
    args = p.parse_args(argv)
    if args.quick:
        args.duration = args.duration or 5.0
        args.warmup = 1.0 if args.warmup is None else args.warmup
        args.scenarios = args.scenarios or "static-1k,get-1m"
        args.connections = args.connections or "32"
        args.frontend = args.frontend or "http"
    args.duration = args.duration or 10.0
    args.warmup = 2.0 if args.warmup is None else args.warmup
    args.scenarios = [s for s in (args.scenarios or ",".join(SCENARIOS)).split(",") if s]
    for s in args.scenarios:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s!r} (known: {', '.join(SCENARIOS)})")
    args.connections = [int(c) for c in (args.connections or "1,32,256").split(",") if c]
    args.frontend = [f for f in (args.frontend or "http,https").split(",") if f]
    for f in args.frontend:
        if f not in ("http", "https"):
            p.error(f"--frontend: http or https, not {f!r}")
    args.targets = ["direct"] + [
        t for t in (args.targets or ",".join(TARGET_ORDER)).split(",") if t and t != "direct"
    ]
    for t in args.targets:
        if t not in TARGET_ORDER:
            p.error(f"unknown target {t!r} (known: {', '.join(TARGET_ORDER)})")
    if args.out is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        args.out = Path(tempfile.gettempdir()) / f"twisted_lb-bench-{stamp}.json"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    problems = []
    if find_wrk() is None:
        problems.append("wrk not found (apt-get install -y wrk)")
    reason = missing_prerequisites()
    if reason:
        problems.append(reason + " (apt-get install -y tomcat10 default-jdk-headless)")
    if problems:
        print("cannot run the benchmark:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2

    cases_total = len(args.scenarios) * len(args.frontend) * len(args.connections)
    est = cases_total * len(args.targets) * args.repeat * (args.duration + args.warmup + 1)
    log(
        f"{cases_total} cases × {len(args.targets)} targets × {args.repeat} repeat(s), "
        f"{args.duration:g} s each: about {est / 60:.1f} min of load after startup"
    )

    workdir = Path(tempfile.mkdtemp(prefix="twisted_lb-bench-"))
    stack = Stack(workdir)
    atexit.register(stack.stop)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old_term = signal.signal(signal.SIGTERM, on_term)
    old_hup = signal.signal(signal.SIGHUP, on_term)

    started = datetime.datetime.now(datetime.timezone.utc)
    doc: dict = {
        "benchmark": "twisted_lb tests/bench/run.py",
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join(
            [sys.executable, "-m", "tests.bench.run", *(argv if argv is not None else sys.argv[1:])]
        ),
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "repeat": args.repeat,
            "scenarios": args.scenarios,
            "connections": args.connections,
            "frontend": args.frontend,
            "wrk_threads": 2,
            "wrk_timeout_s": args.wrk_timeout,
            "workers": args.workers,
            "ajp_packet_size": args.packet_size,
            "ajp_connector": args.ajp_connector,
        },
        "machine": machine_info(),
        "targets": {},
        "cases": [],
        "complete": False,
    }

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        tmp.replace(args.out)

    rc = 0
    try:
        log(f"work directory {workdir}")
        targets = start_stack(stack, args, log)
        doc["targets"] = {
            n: {"description": t.description, "http_port": t.http_port, "https_port": t.https_port}
            for n, t in targets.items()
        }
        assert stack.group is not None
        tomcat_pids = [n.pid for n in stack.group if n.pid]
        scripts = workdir / "lua"
        scripts.mkdir()

        # Global warm-up: JIT of Tomcat, JSP compilation, pools, TLS code paths.
        log("warm-up of every target and scenario")
        for tls in [f == "https" for f in args.frontend]:
            for sname in args.scenarios:
                for target in targets.values():
                    sc = SCENARIOS[sname]
                    script = scripts / "warm.lua"
                    cookies = sticky_cookies(target, tls) if sc.sticky else None
                    script.write_text(
                        lua_script(method=sc.method, body_bytes=sc.body_bytes, cookies=cookies)
                    )
                    url = target.url(tls)
                    assert url is not None
                    run_wrk(
                        url + sc.path,
                        connections=8,
                        duration=2 if not args.quick else 1,
                        script=script,
                        timeout_s=args.wrk_timeout,
                    )

        for sname in args.scenarios:
            scenario = SCENARIOS[sname]
            for fe in args.frontend:
                tls = fe == "https"
                for c in args.connections:
                    label = case_label(sname, tls, c)
                    runs: dict[str, list[dict]] = {n: [] for n in targets}
                    names = list(targets)
                    for rep in range(args.repeat):
                        k = rep % len(names)
                        for name in names[k:] + names[:k]:  # rotate the order per repeat
                            run = measure(
                                targets[name],
                                scenario,
                                tls,
                                c,
                                args.duration,
                                args.warmup,
                                scripts,
                                args.wrk_timeout,
                                tomcat_pids,
                            )
                            runs[name].append(run)
                            log(
                                f"{label:<26} {name:<10} {run['rps']:9.0f} req/s  "
                                f"p50 {run['p50_ms']:.2f} ms  p99 {run['p99_ms']:.2f} ms"
                                + (
                                    "  FLAGGED: " + "; ".join(run["flags"])
                                    if run["flagged"]
                                    else ""
                                )
                                + ("  (" + "; ".join(run["notes"]) + ")" if run["notes"] else "")
                            )
                    rows = {n: aggregate(rs) for n, rs in runs.items()}
                    rat = ratios(rows)
                    doc["cases"].append(
                        {
                            "label": label,
                            "scenario": sname,
                            "tls": tls,
                            "connections": c,
                            "results": rows,
                            "ratios": rat,
                            "runs": runs,
                        }
                    )
                    save()
                    print(format_case(label, rows, rat), flush=True)
        doc["complete"] = True
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); stopping everything")
        rc = 130
    except (RuntimeError, TomcatError, OSError, subprocess.SubprocessError) as e:
        log(f"FAILED: {e}")
        rc = 1
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGHUP, old_hup)
        stack.stop()
        doc["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        if rc and stack.apache is not None:
            print("--- Apache error log (tail) ---\n" + stack.apache.log()[-3000:], file=sys.stderr)
        if rc:
            for name, proxy in stack.proxies.items():
                print(f"--- {name} log (tail) ---\n" + proxy.log()[-3000:], file=sys.stderr)
        save()
        if not args.keep and rc == 0:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"work directory kept: {workdir}")

    if doc["cases"]:
        print()
        print("Summary (Markdown):")
        print(summary_table(doc["cases"]))
        flagged = [
            f"{c['label']} {n}"
            for c in doc["cases"]
            for n, r in c["results"].items()
            if r["flagged"]
        ]
        if flagged:
            print("FLAGGED runs (errors or short responses): " + ", ".join(flagged))
    print(f"results: {args.out}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
