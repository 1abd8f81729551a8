"""
The client of the VIP failover test, run inside the test's client network
namespace: one GET of URL every INTERVAL seconds for SECONDS, carrying the
session cookie the first answer set; prints one JSON line per request
(time, status or error, node, session, counter) and flushes it.

    python -m tests.cluster.vip_client URL SECONDS INTERVAL
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from urllib.parse import urlsplit


def main(argv: list[str]) -> None:
    url, seconds, interval = argv[0], float(argv[1]), float(argv[2])
    parts = urlsplit(url)
    cookie = ""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        record: dict[str, object] = {"t": time.time()}
        try:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=1.0)
            conn.request("GET", parts.path, headers={"Cookie": cookie} if cookie else {})
            response = conn.getresponse()
            body = response.read()
            conn.close()
            record["status"] = response.status
            if response.status == 200:
                data = json.loads(body)
                record.update(node=data["node"], session=data["session"], counter=data["counter"])
                cookie = cookie or f"JSESSIONID={data['session']}"
        except (OSError, ValueError, http.client.HTTPException) as e:
            record["error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(record), flush=True)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


if __name__ == "__main__":
    main(sys.argv[1:])
