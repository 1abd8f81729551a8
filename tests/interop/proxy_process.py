"""
Run twisted_lb as a real process (C{twistd -n lbproxy --config FILE}) for
interop tests, on 127.0.0.1, stopped by PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .tomcat import free_port, _port_accepts

REPO = Path(__file__).resolve().parents[2]


class ProxyProcess:
    """
    twisted_lb started with a configuration text in a directory of its own.

    @ivar log_path: the file the proxy's log goes to.
    """

    def __init__(self, directory: Path, config_text: str, name: str = "site.toml") -> None:
        self.directory = directory
        self.config_path = directory / name
        self.config_path.write_text(config_text)
        self.log_path = directory / "proxy.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, wait_ports: list[int], timeout: float = 30.0) -> None:
        """Start the proxy and wait until every port in C{wait_ports} accepts."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        command = [
            sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
            "-n", "--pidfile=", "--logfile", str(self.log_path),
            "lbproxy", "--config", str(self.config_path),
        ]
        self.process = subprocess.Popen(
            command, cwd=self.directory, env=env,
            stdout=subprocess.DEVNULL, stderr=open(self.directory / "stderr.log", "wb"),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"twisted_lb exited with {self.process.returncode}:\n{self.log()}")
            if all(_port_accepts(p) for p in wait_ports):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"twisted_lb did not listen within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        text = ""
        for path in (self.log_path, self.directory / "stderr.log"):
            if path.exists():
                text += path.read_text(errors="replace")
        return text

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the proxy by PID (SIGTERM, then SIGKILL)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


__all__ = ["ProxyProcess", "free_port"]
