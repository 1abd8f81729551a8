"""
VIP failover with keepalived: two proxies, each in a network namespace the
test creates, share a virtual IP moved by a keepalived VRRP pair whose check
script asks the proxy's admin listener whether it is ready; a client
namespace sends steady requests with a session cookie to the VIP. SIGKILL
of the active proxy moves the VIP to the other, the session continues on the
same node, and every failed request is counted and reported.

Everything lives in namespaces and a bridge the test creates (10.213.0.0/24,
no address outside them) and is removed, and every process it starts is
stopped by PID. Skipped, with the reason, where namespaces cannot be made.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NET = "10.213.0"
VIP = f"{NET}.100"
PROXY_PORT, ADMIN_PORT, NODE_PORTS = 8080, 8081, (8009, 8010)

CHECK = """#!/bin/sh
# Readiness of the proxy in this namespace: GET /healthz on its admin
# listener; a proxy without /healthz (404) is ready when its admin API answers
# and its listener gives an HTTP answer (any status).
code=$(curl -s -o /dev/null -w '%{{http_code}}' --max-time 1 http://127.0.0.1:{admin}/healthz)
[ "$code" = 200 ] && exit 0
[ "$code" = 404 ] || exit 1
curl -sf -o /dev/null --max-time 1 http://127.0.0.1:{admin}/api/balancers || exit 1
exec curl -s -o /dev/null --max-time 1 http://127.0.0.1:{port}/
"""

KEEPALIVED = """global_defs {{
    router_id {name}
    script_user root
    enable_script_security
}}
vrrp_script chk_twisted_lb {{
    script "{check}"
    interval 1
    timeout 2
    fall 1
    rise 2
}}
vrrp_instance twisted_lb {{
    state {state}
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int 1
    unicast_src_ip {address}
    unicast_peer {{
        {peer}
    }}
    virtual_ipaddress {{
        {vip}/24 dev eth0
    }}
    track_script {{
        chk_twisted_lb
    }}
}}
"""

PROXY = """workers = 1
shutdown_timeout = 1
[[listen]]
endpoint = "tcp:{port}"
[balancers.app]
[[balancers.app.members]]
url = "ajp://{net}.20:{node1}"
route = "node1"
[[balancers.app.members]]
url = "ajp://{net}.20:{node2}"
route = "node2"
[[routes]]
path = "/"
balancer = "app"
[admin]
endpoint = "tcp:{admin}:interface=127.0.0.1"
"""


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=20)


def _why_no_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "keepalived", "curl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install iproute2 keepalived curl)"
    name = f"tlbprobe{os.getpid()}"
    probe = _run("ip", "netns", "add", name, check=False)
    if probe.returncode != 0:
        return f"cannot create a network namespace: {probe.stderr.strip()}"
    _run("ip", "netns", "del", name, check=False)
    return None


class Lab:
    """The namespaces, the bridge, and the processes started in them."""

    def __init__(self, directory: Path) -> None:
        tag = str(os.getpid() % 100000)
        self.dir = directory
        self.bridge = f"tlbbr{tag}"
        self.ns = {role: f"tlb-{role}-{tag}" for role in ("client", "p1", "p2", "nodes")}
        self.address = {
            "p1": f"{NET}.1",
            "p2": f"{NET}.2",
            "client": f"{NET}.10",
            "nodes": f"{NET}.20",
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def create(self) -> None:
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "link", "set", self.bridge, "up")
        for i, (role, ns) in enumerate(self.ns.items()):
            veth = f"{self.bridge}v{i}"
            _run("ip", "netns", "add", ns)
            _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _run("ip", "link", "set", veth, "master", self.bridge, "up")
            _run("ip", "-n", ns, "addr", "add", f"{self.address[role]}/24", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")

    def start(self, role: str, command: list[str], log: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with open(self.dir / log, "ab") as out:
            process = subprocess.Popen(
                ["ip", "netns", "exec", self.ns[role], *command],
                cwd=self.dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        self.processes.append(process)
        return process

    def vip_holder(self) -> str | None:
        for role in ("p1", "p2"):
            shown = _run(
                "ip", "-n", self.ns[role], "-4", "addr", "show", "dev", "eth0", check=False
            )
            if f"{VIP}/" in shown.stdout:
                return role
        return None

    def in_ns_http(self, role: str, url: str) -> str:
        return _run(
            "ip",
            "netns",
            "exec",
            self.ns[role],
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "1",
            url,
            check=False,
        ).stdout

    def destroy(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
        for ns in self.ns.values():
            _run("ip", "netns", "del", ns, check=False)
        _run("ip", "link", "del", self.bridge, check=False)

    def log(self) -> str:
        text = ""
        for path in sorted(self.dir.glob("*.log")):
            text += f"--- {path.name}\n{path.read_text(errors='replace')[-2500:]}\n"
        return text


def _wait(condition, timeout: float, what: str, lab: Lab) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s\n{lab.log()}")
        time.sleep(0.1)


@pytest.fixture
def lab(tmp_path: Path):  # noqa: ANN201
    why = _why_no_namespaces()
    if why:
        pytest.skip(why)
    lab = Lab(tmp_path)
    try:
        lab.create()
        yield lab
    finally:
        lab.destroy()


def test_sigkill_of_the_active_proxy_moves_the_vip_and_keeps_the_session(lab: Lab) -> None:
    python = sys.executable
    lab.start(
        "nodes",
        [python, "-m", "tests.cluster.vip_nodes", f"{NET}.20", *map(str, NODE_PORTS)],
        "nodes.log",
    )
    proxies = {}
    for role, peer, state, priority in (("p1", "p2", "MASTER", 150), ("p2", "p1", "BACKUP", 100)):
        config = lab.dir / f"{role}.toml"
        config.write_text(
            PROXY.format(
                port=PROXY_PORT, admin=ADMIN_PORT, net=NET, node1=NODE_PORTS[0], node2=NODE_PORTS[1]
            )
        )
        proxies[role] = lab.start(
            role,
            [
                python,
                "-c",
                "from twisted.scripts.twistd import run; run()",
                "-n",
                "--pidfile=",
                "--logfile",
                str(lab.dir / f"{role}-proxy.log"),
                "lbproxy",
                "--config",
                str(config),
            ],
            f"{role}-twistd.log",
        )
        check = lab.dir / f"{role}-check.sh"
        check.write_text(CHECK.format(admin=ADMIN_PORT, port=PROXY_PORT))
        check.chmod(0o755)
        keepalived = lab.dir / f"{role}-keepalived.conf"
        keepalived.write_text(
            KEEPALIVED.format(
                name=f"tlb_{role}",
                check=check,
                state=state,
                priority=priority,
                address=lab.address[role],
                peer=lab.address[peer],
                vip=VIP,
            )
        )
        lab.start(
            role,
            [
                "keepalived",
                "--dont-fork",
                "--log-console",
                "--log-detail",
                "--vrrp",
                "-f",
                str(keepalived),
                "-p",
                str(lab.dir / f"{role}-keepalived.pid"),
                "-r",
                str(lab.dir / f"{role}-vrrp.pid"),
            ],
            f"{role}-keepalived.log",
        )
    for role in ("p1", "p2"):
        _wait(
            lambda r=role: lab.in_ns_http(r, f"http://127.0.0.1:{PROXY_PORT}/session") == "200",
            20,
            f"proxy {role} serving",
            lab,
        )
    _wait(lambda: lab.vip_holder() == "p1", 15, "the VIP on p1", lab)

    client = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            lab.ns["client"],
            python,
            "-m",
            "tests.cluster.vip_client",
            f"http://{VIP}:{PROXY_PORT}/session",
            "9",
            "0.05",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    lab.processes.append(client)  # type: ignore[arg-type]
    time.sleep(2.5)
    killed_at = time.time()
    proxies["p1"].send_signal(signal.SIGKILL)  # the active proxy dies (by PID)
    out, err = client.communicate(timeout=30)
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert records, err
    holder = lab.vip_holder()
    ok = [r for r in records if r.get("status") == 200]
    failed = [r for r in records if r.get("status") != 200]
    after = [r for r in ok if r["t"] > killed_at]
    moved_at = after[0]["t"] if after else None
    report = (
        f"VIP failover: {len(records)} requests, {len(failed)} failed "
        f"({', '.join(sorted({r.get('error', str(r.get('status'))) for r in failed})) or 'none'}); "
        f"service back {moved_at - killed_at:.2f} s after SIGKILL"
        if moved_at
        else "never back"
    )
    print(report)
    assert holder == "p2", report + "\n" + lab.log()
    assert after, report + "\n" + lab.log()
    # The session continues on the same node: one session id, one node, the
    # node's counter goes on from where it was.
    assert len({r["session"] for r in ok}) == 1, report
    assert len({r["node"] for r in ok}) == 1, report
    counters = [r["counter"] for r in ok]
    assert counters == sorted(counters) and len(set(counters)) == len(counters), counters
    # Requests fail only between the kill and the VIP's move; none before or after.
    assert all(killed_at - 1.0 <= r["t"] <= moved_at for r in failed), report
    # keepalived's check interval (1 s) and VRRP's takeover bound the window.
    assert moved_at - killed_at < 5.0, report
