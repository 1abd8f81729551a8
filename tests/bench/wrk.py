"""Running wrk and reading its results.

Every run uses a generated Lua script whose C{done()} prints one JSON line with wrk's own
counters (requests, bytes, errors by kind, latency percentiles in microseconds), so nothing is
parsed from wrk's human-readable output (that output is kept for the record).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

MARK = "WRKJSON "

_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"bytes":%d,"duration_us":%d,"connect":%d,"read":%d,'
    .. '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
    .. '"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end
"""


def lua_script(
    *, method: str = "GET", body_bytes: int = 0, cookies: list[str] | None = None
) -> str:
    """The Lua script for one run.

    @param body_bytes: send a request body of this many bytes (C{"x"} repeated).
    @param cookies: C{Cookie} header values; each request takes the next one in turn (so that
        requests are spread over several sticky sessions). Without cookies the request is
        wrk's static one (no Lua call per request).
    """
    lines = [f'wrk.method = "{method}"']
    if body_bytes:
        lines.append(f'wrk.body = string.rep("x", {int(body_bytes)})')
        lines.append('wrk.headers["Content-Type"] = "application/octet-stream"')
    if cookies:
        quoted = ", ".join(json.dumps(c) for c in cookies)
        lines.append(
            f"""
local cookies = {{{quoted}}}
local reqs = nil
local i = 0
request = function()
  if reqs == nil then
    reqs = {{}}
    for k, c in ipairs(cookies) do
      reqs[k] = wrk.format(nil, nil, {{["Cookie"] = c}})
    end
  end
  i = i % #reqs + 1
  return reqs[i]
end
"""
        )
    return "\n".join(lines) + "\n" + _DONE


def find_wrk() -> str | None:
    return shutil.which("wrk")


def run_wrk(
    url: str,
    *,
    connections: int,
    duration: float,
    script: Path,
    threads: int = 2,
    timeout_s: float = 10.0,
) -> dict:
    """Run wrk once; return its counters (see L{MARK}) plus C{"output"} (the text).

    @raise RuntimeError: wrk failed or printed no result.
    """
    wrk = find_wrk()
    if wrk is None:
        raise RuntimeError("wrk not found (apt-get install -y wrk)")
    threads = max(1, min(threads, connections))
    cmd = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={timeout_s:g}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    proc = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=duration + timeout_s + 30,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            result = json.loads(line[len(MARK) :])
            result["output"] = proc.stdout.replace(line + "\n", "").strip()
            result["command"] = " ".join(cmd)
            return result
    raise RuntimeError(
        f"wrk gave no result (rc={proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
    )
