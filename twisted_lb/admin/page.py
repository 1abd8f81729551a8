"""
The balancer manager's HTML page: server-rendered, one small form (POST, with
the cross-site token) per action, so that it works without JavaScript; a few
lines of inline script only refresh it every few seconds while no field is
being edited.  No external assets.  Draining or disabling the last member
that takes new requests asks first (a page with the question, so that it
works without JavaScript too).
"""

from __future__ import annotations

from html import escape
from typing import Any

__all__ = ["SCRIPT", "render_page"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right}
.state{font-weight:bold;padding:.1em .4em;border-radius:.3em;white-space:nowrap}
.state.active{background:#d4f4dd}.state.draining{background:#fff1c2}
.state.disabled{background:#ddd;color:#444}.state.standby{background:#dde6fb}
.state.error{background:#c62828;color:#fff}.state.probing{background:#f6c48a}
.state.slowstart{background:#c9eef2}.error{color:#b00;font-weight:bold}
.confirm{padding:.6em;background:#fff4e0;border:2px solid #e0a040;max-width:60em}
.chartgrid{display:flex;flex-wrap:wrap;gap:1em}figure{margin:.5em 0}
figcaption{font-weight:bold;font-size:.9em}[data-chart]{min-width:340px;min-height:60px}
form{display:inline;margin:0}button{margin:.1em}
input[type=number]{width:4.5em}.msg{padding:.5em;background:#eef6ee;border:1px solid #9c9}
.err{padding:.5em;background:#fbeaea;border:1px solid #c99}.small{color:#666;font-size:.85em}
"""

#: The page's only script (its hash goes into the Content-Security-Policy).
SCRIPT = """
(function(){var box=document.getElementById('refresh');
box.checked=localStorage.getItem('lb-refresh')!=='off';
box.onchange=function(){localStorage.setItem('lb-refresh',box.checked?'on':'off')};
setInterval(function(){var a=document.activeElement;
if(box.checked&&!(a&&(a.tagName==='INPUT'&&a.type!=='checkbox')))location.replace(location.pathname)},5000)})();
"""

#: Buttons offered for a member in each state: (action, label).
_BUTTONS = {
    "active": (("drain", "Drain"), ("disable", "Disable"), ("standby", "Make standby")),
    "draining": (("enable", "Enable"), ("disable", "Disable")),
    "disabled": (("enable", "Enable"), ("drain", "Drain")),
    "standby": (("enable", "Unmake standby"), ("drain", "Drain"), ("disable", "Disable")),
}


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(count)  # pragma: no cover


def _form(token: str, balancer: str, route: str, action: str, inner: str, label: str) -> str:
    return (
        '<form method="post" action="action">'
        f'<input type="hidden" name="token" value="{escape(token)}">'
        f'<input type="hidden" name="balancer" value="{escape(balancer)}">'
        f'<input type="hidden" name="route" value="{escape(route)}">'
        f'<input type="hidden" name="action" value="{escape(action)}">{inner}'
        f'<button type="submit" data-action="{escape(action)}" data-route="{escape(route)}">'
        f"{escape(label)}</button></form>"
    )


def _check(m: dict[str, Any]) -> str:
    css = ' class="error"' if (m.get("check") or {}).get("ok") is False else ""
    return f"<span{css}>{escape(m['last_check'])}</span>"


def _pinned(pinned: dict[str, Any] | None) -> str:
    if pinned is None:
        return ""
    minutes = pinned["window_seconds"] / 60
    text = f"{pinned['sessions']} session(s) in the last {minutes:g} min"
    if pinned["last_seen_seconds_ago"] is not None:
        text += f", last {pinned['last_seen_seconds_ago']:g} s ago"
    return f'<br><span class="small">{escape(text)}</span>'


def _member_row(token: str, balancer: str, m: dict[str, Any]) -> str:
    route = m["route"]
    buttons = "".join(
        _form(token, balancer, route, action, "", label)
        for action, label in _BUTTONS.get(m["status"], ())
    )
    loadfactor = _form(
        token, balancer, route, "loadfactor",
        f'<input type="number" name="loadfactor" min="1" max="100" step="any" '
        f'value="{m["loadfactor"]:g}" aria-label="load factor of {escape(route)}">',
        "Set",
    )
    remove = _form(token, balancer, route, "remove", "", "Remove")
    usable = "yes" if m["usable"] else "no"
    url = ""
    if m["url"] and m["url"] != m["name"]:
        url = f'<br><span class="small">{escape(m["url"])}</span>'
    why_class = ' class="error"' if m["in_error"] else ""
    return (
        f'<tr data-route="{escape(route)}">'
        f"<td>{escape(m['name'])}{url}</td>"
        f"<td>{escape(route)}</td>"
        f'<td><span class="state {escape(m["state"])}" data-state="{escape(m["state"])}">'
        f"{escape(m['state_text'])}</span>{_pinned(m['pinned'])}</td>"
        f"<td{why_class}>{usable}: {escape(m['why'])}</td>"
        f"<td>{loadfactor}</td><td class=\"n\">{m['lbset']}</td>"
        f"<td class=\"n\">{m['in_flight']}</td><td class=\"n\">{m['elected']}</td>"
        f"<td class=\"n\">{m['errors']}</td>"
        f"<td class=\"n\">{_size(m['bytes_in'])} / {_size(m['bytes_out'])}</td>"
        f"<td>{_check(m)}</td><td>{buttons} {remove}</td></tr>"
    )


def _add_form(token: str, balancer: str) -> str:
    return (
        '<form method="post" action="action" class="add">'
        f'<input type="hidden" name="token" value="{escape(token)}">'
        f'<input type="hidden" name="balancer" value="{escape(balancer)}">'
        '<input type="hidden" name="action" value="add">'
        'Add a member: <input name="url" placeholder="ajp://10.0.0.3:8009" required size="28"> '
        '<input name="route" placeholder="route (jvmRoute)" size="14"> '
        'load factor <input type="number" name="loadfactor" min="1" max="100" step="any" value="1"> '
        '<button type="submit">Add</button></form>'
    )


def _balancer(token: str, b: dict[str, Any]) -> str:
    sticky = b["sticky"]
    sticky_text = (
        "off" if sticky is None
        else f"cookie {', '.join(sticky['cookie_names'])}; path {', '.join(sticky['path_names'])}"
    )
    head = (
        "<tr><th>Member</th><th>Route</th><th>State</th><th>Usable</th><th>Load factor</th>"
        "<th>lbset</th><th>In flight</th><th>Elected</th><th>Errors</th>"
        "<th>Bytes in / out</th><th>Last check</th><th>Actions</th></tr>"
    )
    rows = "".join(_member_row(token, b["name"], m) for m in b["members"])
    charts = "".join(
        f'<figure><figcaption>{escape(m["route"])} <span class="small">req/s, errors/s; '
        "p50 / p99 ms (right)</span></figcaption>"
        f'<div data-chart="1" data-balancer="{escape(b["name"])}" data-member="{escape(m["name"])}">'
        '<span class="small">no requests in the last 15 minutes</span></div></figure>'
        for m in b["members"]
    )
    return (
        f'<section data-balancer="{escape(b["name"])}"><h2>Balancer {escape(b["name"])}</h2>'
        f'<p class="small">method {escape(b["method"])}; sticky sessions {escape(sticky_text)}; '
        f"max attempts {b['max_attempts']}; nofailover {'on' if b['nofailover'] else 'off'}</p>"
        f"<table>{head}{rows}</table><p>{_add_form(token, b['name'])}</p>"
        '<details class="charts" open><summary>Last 15 minutes, per member</summary>'
        f'<div class="chartgrid">{charts}</div></details></section>'
    )


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _about(about: dict[str, Any] | None) -> str:
    if not about:
        return ""
    parts = [f"twisted_lb {about['version']}"]
    if about.get("started") is not None:
        parts.append(f"up {_ago(about['now'] - about['started'])}")
    parts.append(f"configuration {about['source']}")
    reload = about.get("last_reload")
    if reload is None:
        parts.append("not reloaded since start")
    else:
        parts.append(f"last reload {_ago(about['now'] - reload[0])} ago: {reload[1]}")
    return '<p class="small" id="about">' + escape(" · ".join(parts)) + "</p>"


def _confirmation(token: str, confirm: dict[str, str]) -> str:
    """The question asked before the last member taking new requests is drained or disabled."""
    action, balancer, route = confirm["action"], confirm["balancer"], confirm["route"]
    doing = "disabling" if action == "disable" else "draining"
    text = (
        f"{route} is the last member of balancer {balancer} that takes new requests: "
        f"{doing} it leaves new sessions without a member (they get 503)."
    )
    go = _form(
        token, balancer, route, action, '<input type="hidden" name="confirmed" value="1">',
        f"{action.capitalize()} {route} anyway",
    ).replace('data-action="', 'data-confirm="yes" data-action="', 1)
    return (
        f'<div class="confirm" role="alertdialog"><p>{escape(text)}</p>'
        f'<p>{go} <a href="./">Cancel</a></p></div>'
    )


def render_page(
    balancers: list[dict[str, Any]],
    token: str,
    message: str = "",
    error: str = "",
    note: str = "",
    *,
    about: dict[str, Any] | None = None,
    confirm: dict[str, str] | None = None,
    extra: str = "",
) -> bytes:
    """
    The whole page.

    @param balancers: L{describe_all <twisted_lb.admin.view.describe_all>}'s output.
    @param token: the cross-site token put in every form.
    @param message: a confirmation of the last action, if any.
    @param error: why the last action failed, if it did.
    @param note: which process this page shows, when there are several.
    @param about: the version, C{started} and C{now} (clock times), the
        configuration C{source} and the C{last_reload} (when, what).
    @param confirm: an action (C{action}, C{balancer}, C{route}) to confirm
        before it is done.
    @param extra: more HTML after the balancers (the group of proxies, see
        L{cluster_view <twisted_lb.admin.cluster_view>}).
    """
    notice = ""
    if message:
        notice = f'<p class="msg" role="status">{escape(message)}</p>'
    if error:
        notice = f'<p class="err" role="alert">{escape(error)}</p>'
    if confirm:
        notice = _confirmation(token, confirm)
    body = "".join(_balancer(token, b) for b in balancers)
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>twisted_lb balancer manager</title>"
        '<link rel="stylesheet" href="static/uPlot.min.css">'
        f"<style>{_STYLE}</style></head><body><h1>twisted_lb balancer manager</h1>"
        + _about(about)
        + (f'<p class="small" id="process">{escape(note)}</p>' if note else "")
        + '<p class="small"><label><input type="checkbox" id="refresh"> refresh every 5 s</label>'
        ' · <a href="api/balancers">JSON</a> · <a href="metrics">metrics</a> · '
        '<form method="post" action="action">'
        f'<input type="hidden" name="token" value="{escape(token)}">'
        '<input type="hidden" name="action" value="reload">'
        '<button type="submit">Reload configuration</button></form></p>'
        f"{notice}{body}{extra}<script>{SCRIPT}</script>"
        '<script src="static/uPlot.iife.min.js"></script><script src="static/charts.js"></script>'
        "</body></html>"
    )
    return html.encode("utf-8")
