"""
A real etcd cluster for tests: N members of Debian's C{/usr/bin/etcd} on
loopback ports, data in a temporary directory, each stopped (or killed) and
started again by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.interop.tomcat import LOOPBACK, free_port

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def etcd_missing() -> str | None:
    """Why etcd tests cannot run here, or C{None}."""
    if not os.access(ETCD, os.X_OK):
        return "etcd is not installed (apt-get install etcd-server)"
    return None


class EtcdMember:
    def __init__(self, cluster: EtcdCluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.data_dir = cluster.directory / name
        self.process: subprocess.Popen[bytes] | None = None
        #: False once the test stopped it on purpose.
        self.should_run = False

    @property
    def url(self) -> str:
        scheme = "https" if self.cluster.tls else "http"
        return f"{scheme}://{LOOPBACK}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{LOOPBACK}:{self.peer_port}"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        self.should_run = True
        log = open(self.cluster.directory / f"{self.name}.log", "ab")  # noqa: SIM115
        state = "existing" if self.data_dir.exists() else "new"
        self.process = subprocess.Popen(
            [
                ETCD,
                "--name",
                self.name,
                "--data-dir",
                str(self.data_dir),
                "--listen-client-urls",
                self.url,
                "--advertise-client-urls",
                self.url,
                "--listen-peer-urls",
                self.peer_url,
                "--initial-advertise-peer-urls",
                self.peer_url,
                "--initial-cluster",
                self.cluster.initial_cluster,
                "--initial-cluster-state",
                state,
                "--initial-cluster-token",
                self.cluster.token,
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
                "--snapshot-count",
                "100000",
                *self.cluster.tls_args(),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.should_run = False
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def status(self) -> dict | None:
        try:
            return post(self.url, "/v3/maintenance/status", {}, 1, self.cluster.context())
        except OSError:
            return None


def post(
    url: str, path: str, body: dict, timeout: float = 2.0, context: ssl.SSLContext | None = None
) -> dict:
    request = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        return json.loads(response.read())


class EtcdCluster:
    """C{size} etcd members on 127.0.0.1 forming one cluster."""

    def __init__(self, directory: Path, size: int = 3, tls: dict[str, Path] | None = None) -> None:
        """
        @param tls: C{cert}, C{key} (the server's) and C{client_ca} (what client
            certificates must be signed by): clients then connect over TLS with
            a certificate.
        """
        self.directory = directory
        self.tls = tls
        self.client_cert: tuple[Path, Path] | None = None
        self.ca: Path | None = None
        self.token = f"tlb-{os.getpid()}-{time.monotonic_ns()}"
        self.members = [EtcdMember(self, f"m{i}") for i in range(size)]
        self.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def tls_args(self) -> list[str]:
        if not self.tls:
            return []
        return [
            "--cert-file",
            str(self.tls["cert"]),
            "--key-file",
            str(self.tls["key"]),
            "--client-cert-auth",
            "--trusted-ca-file",
            str(self.tls["client_ca"]),
        ]

    def context(self) -> ssl.SSLContext | None:
        """What the test's own requests use to reach a TLS cluster."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=str(self.ca or self.tls["cert"]))
        if self.client_cert is not None:
            context.load_cert_chain(*map(str, self.client_cert))
        return context

    @property
    def urls(self) -> list[str]:
        return [m.url for m in self.members]

    def start(self, timeout: float = 20.0) -> None:
        for member in self.members:
            member.start()
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 20.0) -> None:
        """Until every running member answers a linearizable read (the cluster has a leader)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            started = [m for m in self.members if m.process is not None]
            if any(m.process.poll() is not None for m in started if m.should_run):
                break  # one exited by itself
            if all(self._reads(m) for m in started if m.should_run):
                return
            time.sleep(0.05)
        raise RuntimeError("etcd cluster not healthy:\n" + self.logs())

    def _reads(self, member: EtcdMember) -> bool:
        try:
            post(member.url, "/v3/kv/range", {"key": "eA=="}, 1, self.context())
            return True
        except OSError:
            return False

    def leader(self) -> EtcdMember:
        for member in self.members:
            status = member.status() if member.running else None
            if status is not None and status.get("leader") == status["header"]["member_id"]:
                return member
        raise RuntimeError("no etcd leader")

    def stop(self) -> None:
        for member in self.members:
            with contextlib.suppress(Exception):
                member.stop()

    def logs(self) -> str:
        text = ""
        for member in self.members:
            path = self.directory / f"{member.name}.log"
            if path.exists():
                text += f"--- {member.name}\n" + path.read_text(errors="replace")[-3000:]
        return text
