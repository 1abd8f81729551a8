"""The Python baseline: Twisted's own C{twisted.web.proxy.ReverseProxyResource}.

    python tests/bench/twisted_baseline.py --backend-port 8080 --port 9000 \
        [--tls-port 9443 --cert cert.pem --key key.pem]

serves C{/app/...} by proxying to C{http://127.0.0.1:BACKEND/app/...} (one backend, a new
HTTP/1.0 connection per request: what ReverseProxyResource does). Listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend-port", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-port", type=int)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args(argv)

    from twisted.internet import reactor, ssl
    from twisted.web.proxy import ReverseProxyResource
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    root = Resource()
    root.putChild(b"app", ReverseProxyResource("127.0.0.1", args.backend_port, b"/app"))
    site = Site(root)
    site.noisy = False
    reactor.listenTCP(args.port, site, interface="127.0.0.1", backlog=1024)
    if args.tls_port:
        with open(args.cert, "rb") as f:
            cert_pem = f.read()
        with open(args.key, "rb") as f:
            key_pem = f.read()
        cert = ssl.PrivateCertificate.loadPEM(cert_pem + b"\n" + key_pem)
        reactor.listenSSL(args.tls_port, site, cert.options(), interface="127.0.0.1", backlog=1024)
    print("ready", flush=True)
    reactor.run()


if __name__ == "__main__":
    sys.exit(main())
