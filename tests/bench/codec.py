"""A repeatable micro-benchmark of the AJP codec's proxy role (no sockets, no reactor).

    python -m tests.bench.codec [--size BYTES] [--packet-size N] [--repeat R]

One exchange: encode a FORWARD_REQUEST (the headers of a typical browser request), then parse a
container's answer (SEND_HEADERS, the body in SEND_BODY_CHUNK packets, END_RESPONSE) fed in
64 KiB reads, as the reactor hands them over. Prints the best of R runs in µs per exchange: on a
busy machine the minimum is the figure least disturbed by other processes, so two versions can
be compared back to back (``git stash``) where the wrk benchmark is too noisy.
"""

from __future__ import annotations

import argparse
import time

from twisted_lb.ajp import (
    NEED_DATA,
    AJPConnection,
    EndResponse,
    ForwardRequest,
    Role,
    SendBodyChunk,
    SendHeaders,
)

_HEADERS = (
    (b"Host", b"www.example.com"),
    (b"User-Agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    (b"Accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    (b"Accept-Language", b"en-US,en;q=0.5"),
    (b"Accept-Encoding", b"gzip, deflate, br"),
    (b"Cookie", b"JSESSIONID=0123456789ABCDEF0123456789ABCDEF.tomcat1"),
    (b"X-Forwarded-For", b"127.0.0.1"),
)


def _answer(size: int, packet_size: int) -> list[bytes]:
    container = AJPConnection(Role.CONTAINER, packet_size)
    proxy = AJPConnection(Role.PROXY, packet_size)
    container.receive_data(proxy.send(_request()))
    container.next_event()
    wire = [container.send(SendHeaders(200, b"OK", ((b"Content-Length", b"%d" % size),)))]
    chunk = packet_size - 8
    body = bytes(range(256)) * (size // 256 + 1)
    for start in range(0, size, chunk):
        wire.append(container.send(SendBodyChunk(body[start : min(size, start + chunk)])))
    wire.append(container.send(EndResponse(True)))
    data = b"".join(wire)
    return [data[i : i + 65536] for i in range(0, len(data), 65536)]


def _request() -> ForwardRequest:
    return ForwardRequest(
        method=b"GET", req_uri=b"/app/big", protocol=b"HTTP/1.1", remote_addr=b"127.0.0.1",
        remote_host=None, server_name=b"www.example.com", server_port=80, is_ssl=False,
        headers=_HEADERS, query_string=b"bytes=1048576", route=b"tomcat1", secret=b"s3cr3t",
        request_attributes=((b"AJP_REMOTE_PORT", b"51514"),),
    )  # fmt: skip


def exchange(reads: list[bytes], packet_size: int) -> int:
    """One exchange through a new proxy-role connection; returns the body bytes seen."""
    proxy = AJPConnection(Role.PROXY, packet_size)
    proxy.send(_request())
    seen = 0
    for data in reads:
        proxy.receive_data(data)
        while True:
            event = proxy.next_event()
            if event is NEED_DATA:
                break
            if type(event) is SendBodyChunk:
                seen += len(event.data)
    return seen


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.bench.codec")
    p.add_argument("--size", type=int, default=1048576)
    p.add_argument("--packet-size", type=int, default=8192)
    p.add_argument("--repeat", type=int, default=30)
    args = p.parse_args(argv)
    reads = _answer(args.size, args.packet_size)
    assert exchange(reads, args.packet_size) == args.size
    n = max(1, 50_000_000 // (args.size + 50_000))
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            exchange(reads, args.packet_size)
        best = min(best, (time.perf_counter() - t0) / n)
    print(f"size={args.size} packet_size={args.packet_size}: {best * 1e6:.1f} µs per exchange (best of {args.repeat})")


if __name__ == "__main__":
    main()
