"""
The manager's view of a group of proxies sharing one state ([cluster]): the
store and whether it answers, the proxies registered (and the ones gone),
and the members whose health the proxies see differently. Shown as a section
of the page and as C{GET /api/cluster}.
"""

from __future__ import annotations

import time
from html import escape
from typing import Any

__all__ = ["render_cluster"]


def _ago(then: float | None, now: float) -> str:
    if then is None:
        return ""
    seconds = max(0, int(now - then))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def render_cluster(described: dict[str, Any]) -> str:
    """
    The page's section for the group.

    @param described: L{ClusterService.describe <twisted_lb.cluster.ClusterService.describe>}'s output.
    """
    now = time.time()
    if described["up"] is False:
        store = (
            f'<p class="err" role="alert" id="store">Shared store <b>{escape(described["store"])}</b> '
            f"is <b>down</b>: {escape(described['problem'])}. This proxy serves with the last state "
            f"it applied (revision {described['revision']}); changes are refused until it is back.</p>"
        )
    else:
        state = "up" if described["up"] else "not reached yet"
        store = (
            f'<p class="small" id="store">Shared store {escape(described["store"])}: <b>{state}</b>, '
            f"using {escape(described['endpoint'])}; prefix {escape(described['prefix'])}; "
            f"revision {described['revision']}.</p>"
        )
    rows = []
    for i in described["instances"]:
        gone = i["gone_since"] is not None
        status = (
            f'<span class="error">gone {_ago(i["gone_since"], now)}</span>' if gone else "present"
        )
        name = escape(i["name"]) + (" (this proxy)" if i["this"] else "")
        rows.append(
            f'<tr class="{"gone" if gone else "present"}"><td>{name}</td><td>{escape(i["address"])}</td>'
            f"<td>{escape(str(i['version']))}</td><td>{_ago(i['started'], now)}</td>"
            f"<td>{status}</td></tr>"
        )
    table = (
        '<table id="instances"><tr><th>Instance</th><th>Address</th><th>Version</th>'
        "<th>Started</th><th>Status</th></tr>" + "".join(rows) + "</table>"
    )
    disagreements = ""
    if described["disagreements"]:
        items = "".join(
            f"<li>{escape(d['balancer'])} / {escape(d['route'])}: "
            + "; ".join(f"{escape(n)} sees {escape(v)}" for n, v in d["views"].items())
            + "</li>"
            for d in described["disagreements"]
        )
        disagreements = (
            '<p class="err" id="disagreements">The proxies see these members\' health differently '
            f"(health checks run on each proxy):</p><ul>{items}</ul>"
        )
    return f'<h2 id="cluster">Proxies of the group</h2>{store}{table}{disagreements}'
