"""
twistd with [cluster] and workers = 2 against a real etcd: a change made in
worker 0's manager reaches both workers through the store (no state file, no
signal), and a proxy started later applies the stored state before serving.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.interop.proxy_process import REPO, ProxyProcess
from tests.interop.tomcat import free_port

from .etcd_cluster import EtcdCluster, etcd_missing

CONFIG = """workers = 2
[[listen]]
endpoint = "tcp:{port}:interface=127.0.0.1"
[balancers.app]
stickysession = false
[[balancers.app.members]]
url = "ajp://127.0.0.1:{node1}"
route = "node1"
[[balancers.app.members]]
url = "ajp://127.0.0.1:{node2}"
route = "node2"
[[routes]]
path = "/"
balancer = "app"
[admin]
endpoint = "tcp:{admin}:interface=127.0.0.1"
[cluster]
etcd = {etcd}
prefix = "/twisted_lb/process"
instance = "{name}"
"""


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-LB-Admin": "1"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def etcd(tmp_path: Path):  # noqa: ANN201
    why = etcd_missing()
    if why:
        pytest.skip(why)
    cluster = EtcdCluster(tmp_path / "etcd", size=1)
    (tmp_path / "etcd").mkdir()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def nodes(tmp_path: Path):  # noqa: ANN201
    ports = [free_port(), free_port()]
    with open(tmp_path / "nodes.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.cluster.vip_nodes", "127.0.0.1", *map(str, ports)],
            cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            stdout=log,
            stderr=log,
        )
    try:
        yield ports
    finally:
        process.terminate()
        process.wait(10)


def _proxy(tmp_path: Path, name: str, etcd: EtcdCluster, nodes: list[int]) -> ProxyProcess:
    port, admin = free_port(), free_port()
    directory = tmp_path / name
    directory.mkdir()
    text = CONFIG.format(
        port=port,
        admin=admin,
        node1=nodes[0],
        node2=nodes[1],
        etcd=json.dumps(etcd.urls),
        name=name,
    )
    proxy = ProxyProcess(directory, text)
    proxy.port, proxy.admin = port, admin  # type: ignore[attr-defined]
    proxy.start([port, admin])
    return proxy


def test_workers_follow_the_store_and_a_late_proxy_starts_with_its_state(
    tmp_path: Path, etcd: EtcdCluster, nodes: list[int]
) -> None:
    a = _proxy(tmp_path, "a", etcd, nodes)
    try:
        admin = f"http://127.0.0.1:{a.admin}"  # type: ignore[attr-defined]
        code, body = _post(f"{admin}/api/balancers/app/members/node1", {"action": "disable"})
        assert (code, body) == (200, {"status": "disabled"}), a.log()
        time.sleep(0.5)  # both workers apply it from the watch stream
        seen = set()
        for _ in range(40):  # new connections: both workers answer some
            with urllib.request.urlopen(f"http://127.0.0.1:{a.port}/echo", timeout=5) as r:  # type: ignore[attr-defined]
                seen.add(json.loads(r.read())["node"])
        assert seen == {"node2"}, a.log()
        assert "state_file" not in a.log()
        b = _proxy(tmp_path, "b", etcd, nodes)
        try:
            # Its first answers already follow the stored state: it was applied before serving.
            for _ in range(10):
                with urllib.request.urlopen(f"http://127.0.0.1:{b.port}/echo", timeout=5) as r:  # type: ignore[attr-defined]
                    assert json.loads(r.read())["node"] == "node2"
            members = _get(f"http://127.0.0.1:{b.admin}/api/balancers/app/members")  # type: ignore[attr-defined]
            assert {m["route"]: m["status"] for m in members} == {
                "node1": "disabled",
                "node2": "active",
            }
            cluster = _get(f"http://127.0.0.1:{b.admin}/api/cluster")  # type: ignore[attr-defined]
            assert cluster["up"] is True
            assert cluster["state"] == {"app": {"node1": {"status": "disabled"}}}
        finally:
            b.stop()
    finally:
        a.stop()
