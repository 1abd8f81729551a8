"""WebSocket echo through twisted_lb: ``python -m tests.bench.ws_echo [-n N] [--profile FILE]``.

Starts two Autobahn echo members on 127.0.0.1 (one ``ws://``, one ``wss://``, each a process
of its own) and twisted_lb (``twistd lbproxy``, a process of its own) with a plain and a TLS
frontend in front of the ``wss://`` member -- the first seed's shape. Then, with a blocking
client (as the interop throughput test), it measures messages/s of N 32-byte text messages,
one at a time (request/response) and pipelined (all sent, then all read), for:

  direct ws    the ws:// echo member
  proxy ws     twisted_lb's plain frontend  (ws  -> wss member)
  direct wss   the wss:// echo member
  proxy wss    twisted_lb's TLS frontend    (wss -> wss member)

and prints the proxy/direct ratios. The rounds alternate direct and proxied runs, the best of
``--rounds`` is kept (the machine may be shared). ``--profile FILE`` runs the proxy under
cProfile and writes its statistics to FILE when it stops. Not part of the test run.
"""

from __future__ import annotations

import argparse
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.interop.proxy_process import toml_config
from tests.interop.tomcat import _port_accepts, free_port
from tests.interop.wsclient import RawWebSocket

REPO = Path(__file__).resolve().parents[2]
PATH = "/ws"
TEXT = 0x1


def serve_echo(port: int, cert: str | None, key: str | None) -> None:
    """Run an Autobahn echo server on 127.0.0.1:C{port} until killed."""
    from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
    from twisted.internet import reactor, ssl

    class Echo(WebSocketServerProtocol):
        def onMessage(self, payload: bytes, isBinary: bool) -> None:
            self.sendMessage(payload, isBinary)

    factory = WebSocketServerFactory()
    factory.protocol = Echo
    if cert and key:
        context = ssl.DefaultOpenSSLContextFactory(key, cert)
        reactor.listenSSL(port, factory, context, interface="127.0.0.1")
    else:
        reactor.listenTCP(port, factory, interface="127.0.0.1")
    reactor.run()


def _frame(payload: bytes) -> bytes:
    """A masked text frame (zero key: the mask is a no-op, which the protocol allows)."""
    return struct.pack("!BB", 0x80 | TEXT, 0x80 | len(payload)) + b"\0\0\0\0" + payload


def measure(port: int, tls: bool, n: int) -> tuple[float, float]:
    """Messages/s one at a time and pipelined for C{n} 32-byte text messages."""
    payloads = [f"m{i:05d}".ljust(32, "x").encode() for i in range(n)]
    frames = [_frame(p) for p in payloads]
    with RawWebSocket.connect(port, PATH, tls=tls, timeout=30) as ws:
        t0 = time.perf_counter()
        for p, f in zip(payloads, frames, strict=True):
            ws.sock.sendall(f)
            assert ws.recv_message() == (TEXT, p)
        one = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        ws.sock.sendall(b"".join(frames))
        for p in payloads:
            assert ws.recv_message() == (TEXT, p)
        pipelined = n / (time.perf_counter() - t0)
    return one, pipelined


def _start(command: list[str], directory: Path, name: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with open(directory / f"{name}.log", "ab") as log:
        return subprocess.Popen(
            command, cwd=directory, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )


def _wait(ports: list[int], processes: list[subprocess.Popen[bytes]], directory: Path) -> None:
    deadline = time.monotonic() + 30
    while not all(_port_accepts(p) for p in ports):
        if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
            logs = "".join(f.read_text(errors="replace") for f in directory.glob("*.log"))
            raise RuntimeError(f"a process did not start:\n{logs}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["twistd"]:  # the proxy process (a module, so that cProfile can run it)
        from twisted.internet import reactor
        from twisted.scripts.twistd import run

        profile_to = os.environ.get("WS_ECHO_PROFILE")
        if profile_to:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
            reactor.addSystemEventTrigger(  # type: ignore[attr-defined]
                "before", "shutdown", lambda: (profiler.disable(), profiler.dump_stats(profile_to))
            )
        sys.argv = argv
        run()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="messages per run (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each; the best is kept")
    parser.add_argument("--profile", help="run the proxy under cProfile, statistics to this file")
    parser.add_argument("--serve-echo", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cert", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_echo:
        serve_echo(args.serve_echo, args.cert, args.key)
        return

    from twisted_lb.tls import make_self_signed

    with tempfile.TemporaryDirectory(prefix="ws-echo-") as tmp:
        directory = Path(tmp)
        cert, key = directory / "cert.pem", directory / "key.pem"
        make_self_signed(cert, key)
        ws_port, wss_port, front, tls_front = (free_port() for _ in range(4))
        me = [sys.executable, "-m", "tests.bench.ws_echo"]
        config = toml_config(
            listen=[front],
            tls_listen=[tls_front],
            cert=cert,
            key=key,
            members=[{"url": f"wss://127.0.0.1:{wss_port}", "route": "m1"}],
            path=PATH,
            # One process, so that the profile is of the process that relays.
            top={"workers": 1} if args.profile else None,
        ).replace('route = "m1"', 'route = "m1"\ntls = { verify = false }')
        (directory / "site.toml").write_text(config)
        twistd = ["-m", "tests.bench.ws_echo", "twistd", "-n", "--pidfile=", "--logfile", "proxy.log", "lbproxy"]
        if args.profile:
            os.environ["WS_ECHO_PROFILE"] = str(Path(args.profile).resolve())
        processes = [
            _start([*me, "--serve-echo", str(ws_port)], directory, "echo-ws"),
            _start([*me, "--serve-echo", str(wss_port), "--cert", str(cert), "--key", str(key)],
                   directory, "echo-wss"),
            _start([sys.executable, *twistd, "--config", "site.toml"], directory, "proxy"),
        ]
        try:
            _wait([ws_port, wss_port, front, tls_front], processes, directory)
            targets = {
                "direct ws": (ws_port, False),
                "proxy ws": (front, False),
                "direct wss": (wss_port, True),
                "proxy wss": (tls_front, True),
            }
            for port, tls in targets.values():
                measure(port, tls, 200)  # warm-up
            best: dict[str, tuple[float, float]] = {}
            for _ in range(args.rounds):
                for name, (port, tls) in targets.items():
                    one, piped = measure(port, tls, args.n)
                    old = best.get(name, (0.0, 0.0))
                    best[name] = (max(old[0], one), max(old[1], piped))
        finally:
            for process in reversed(processes):
                _stop(process)
    print(f"WebSocket echo, {args.n} x 32 B text, messages/s (best of {args.rounds}):")
    print(f"  {'':12} {'one at a time':>14} {'pipelined':>10}")
    for name, (one, piped) in best.items():
        print(f"  {name:12} {one:14.0f} {piped:10.0f}")
    for scheme in ("ws", "wss"):
        p, d = best[f"proxy {scheme}"], best[f"direct {scheme}"]
        print(f"  proxy/direct {scheme:4} {p[0] / d[0]:9.2f} {p[1] / d[1]:10.2f}")


if __name__ == "__main__":
    main()
