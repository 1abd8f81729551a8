"""
The admin listener's resources: the manager page and its form actions, the
JSON API, and the metrics, with the security headers every answer carries.

    GET  /                       the manager page
    POST /action                 a form action (token checked)
    GET  /api/balancers[/NAME[/members/ROUTE]]
    POST /api/balancers/NAME/members/ROUTE   {"action": ..., "loadfactor": ...}
    POST /api/balancers/NAME/members         {"url": ..., "route": ..., "loadfactor": ...}
    POST /api/reload                         reload the configuration file (as SIGHUP)
    GET  /api/cluster                        the group of proxies ([cluster] only)
    GET  /metrics                Prometheus text format
    GET  /api/series             the last 15 minutes per member (the charts)
    GET  /static/NAME            the chart script and uPlot (vendored, with its licence)
    GET  /healthz                readiness, without password (see L{twisted_lb.admin.healthz})
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from .actions import ActionError, find_balancer, find_member
from .cluster_view import render_cluster
from .csrf import CrossSiteGuard
from .manager import Manager
from .metrics import RequestMetrics
from .page import SCRIPT, render_page
from .pinned import PinnedSessions
from .series import MemberSeries
from .view import describe_all, describe_balancer, takes_new_requests

__all__ = ["AdminRoot"]

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
_HEADERS = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),  # no-referrer would make form POSTs say Origin: null
    (
        b"content-security-policy",
        f"default-src 'none'; style-src 'self' 'unsafe-inline'; "
        f"script-src 'self' 'sha256-{_SCRIPT_HASH}'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'".encode(),
    ),
)


def _answer(request: Request, status: int, content_type: bytes, body: bytes) -> bytes:
    request.setResponseCode(status)
    headers = request.responseHeaders
    for name, value in _HEADERS:
        headers.setRawHeaders(name, [value])
    headers.setRawHeaders(b"content-type", [content_type])
    return body


def _json(request: Request, status: int, value: Any) -> bytes:
    return _answer(request, status, b"application/json", json.dumps(value, indent=1).encode() + b"\n")


def _arg(request: Request, name: bytes) -> str:
    values = (request.args.get(name) if request.args else None) or [b""]
    return values[0].decode("utf-8", "replace")


_log = Logger()


def _when_done(
    request: Request,
    result: Any,
    done: Callable[[Any], bytes],
    failed: Callable[[ActionError], bytes],
) -> bytes | int:
    """
    Answer with C{done(value)} once the manager's C{result} is there (at
    once, or when a shared store took the change), or C{failed(error)}.
    """
    if not isinstance(result, defer.Deferred):
        return done(result)
    gone: list[bool] = []
    request.notifyFinish().addErrback(lambda _: gone.append(True))

    def finish(body: bytes) -> None:
        if not gone:
            request.write(body)
            request.finish()

    def refused(failure: Failure) -> None:
        if failure.check(ActionError):
            finish(failed(failure.value))  # type: ignore[arg-type]
            return
        _log.failure("manager action", failure)
        finish(failed(ActionError(500, "internal error: see the proxy's log")))

    result.addCallback(lambda value: finish(done(value))).addErrback(refused)
    return NOT_DONE_YET


def _who(request: Request) -> str:
    user = request.getUser().decode("utf-8", "replace") or "anonymous"
    client = request.getClientAddress()
    return f"{user}@{getattr(client, 'host', client)}"


class _Page(Resource):
    isLeaf = True

    def __init__(self, root: AdminRoot) -> None:
        super().__init__()
        self._root = root

    def render_GET(self, request: Request) -> bytes:  # noqa: N802 - twisted.web API
        root = self._root
        page = render_page(
            describe_all(root.manager.balancers, root.pinned),
            root.guard.token,
            message=_arg(request, b"msg"),
            note=root.note,
            error=_arg(request, b"err"),
            about=root.describe_self(),
            extra=root.cluster_section(),
        )
        return _answer(request, 200, b"text/html; charset=utf-8", page)


def _needs_confirmation(root: AdminRoot, request: Request, balancer: str, route: str, action: str) -> bool:
    """Whether C{action} would drain or disable the last member taking new requests, unconfirmed."""
    if action not in ("drain", "disable") or _arg(request, b"confirmed") == "1":
        return False
    try:
        built = find_balancer(root.manager.balancers, balancer)
        member = find_member(built, route)
    except ActionError:
        return False  # the action says what is wrong
    balancer_core = built.balancer
    return takes_new_requests(balancer_core, member) and not any(
        takes_new_requests(balancer_core, other)
        for other in balancer_core.members
        if other is not member
    )


class _FormAction(Resource):
    """POST /action: one form of the page; answers with a redirect back to it."""

    isLeaf = True

    def __init__(self, root: AdminRoot) -> None:
        super().__init__()
        self._root = root

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        request.setHeader(b"allow", b"POST")
        return _answer(request, 405, b"text/plain; charset=utf-8", b"only POST changes state\n")

    def render_POST(self, request: Request) -> bytes | int:  # noqa: N802
        root = self._root
        tokens = request.args.get(b"token") if request.args else None
        token = tokens[0] if tokens else None
        refusal = root.guard.refusal(request, token, form=True)
        if refusal is not None:
            return _answer(request, 403, b"text/plain; charset=utf-8", refusal.encode() + b"\n")
        balancer, route, action = (_arg(request, n) for n in (b"balancer", b"route", b"action"))
        if _needs_confirmation(root, request, balancer, route, action):
            page = render_page(
                describe_all(root.manager.balancers, root.pinned), root.guard.token,
                note=root.note, about=root.describe_self(),
                confirm={"action": action, "balancer": balancer, "route": route},
            )
            return _answer(request, 200, b"text/html; charset=utf-8", page)

        def failed(e: ActionError) -> bytes:
            page = render_page(
                describe_all(root.manager.balancers, root.pinned), root.guard.token, error=str(e),
                note=root.note, about=root.describe_self(), extra=root.cluster_section(),
            )
            return _answer(request, e.status, b"text/html; charset=utf-8", page)

        def redirect(message: str) -> bytes:
            request.setResponseCode(303)
            request.setHeader(b"location", ("./?msg=" + quote(message)).encode("ascii"))
            return _answer(request, 303, b"text/plain; charset=utf-8", message.encode() + b"\n")

        def added(added: dict[str, Any]) -> bytes:
            return redirect(f"added {added['url']} (route {added['route']}) to {balancer}")

        def changed(change: dict[str, Any]) -> bytes:
            done = ", ".join(f"{k} {v}" for k, v in change.items())
            return redirect(f"{balancer} / {route}: {done}")

        try:
            if action == "reload":
                return redirect("configuration reloaded: " + root.manager.reload(who=_who(request)))
            if action == "add":
                result = root.manager.add(
                    balancer, _arg(request, b"url"), route, _arg(request, b"loadfactor") or 1,
                    who=_who(request),
                )
                return _when_done(request, result, added, failed)
            result = root.manager.act(
                balancer, route, action, _arg(request, b"loadfactor"), who=_who(request)
            )
            return _when_done(request, result, changed, failed)
        except ActionError as e:
            return failed(e)


class _Api(Resource):
    """The JSON API (see the module docstring)."""

    isLeaf = True

    def __init__(self, root: AdminRoot) -> None:
        super().__init__()
        self._root = root

    def _path(self, request: Request) -> list[str]:
        parts = [p.decode("utf-8", "replace") for p in request.postpath or []]
        while parts and parts[-1] == "":
            parts.pop()
        return parts

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        root = self._root
        parts = self._path(request)
        try:
            if parts == ["cluster"]:
                if root.cluster is None:
                    return _json(request, 404, {"error": "this proxy has no [cluster]"})
                return _json(request, 200, root.cluster.describe())
            if parts == ["series"]:
                if root.series is None:
                    return _json(request, 404, {"error": "no series are kept here"})
                return _json(request, 200, root.series.snapshot())
            if parts in ([], ["balancers"]):
                return _json(request, 200, {"balancers": describe_all(root.manager.balancers, root.pinned)})
            if len(parts) >= 2 and parts[0] == "balancers":
                built = find_balancer(root.manager.balancers, parts[1])
                described = describe_balancer(built, root.pinned)
                if len(parts) == 2:
                    return _json(request, 200, described)
                if len(parts) == 3 and parts[2] == "members":
                    return _json(request, 200, described["members"])
                if len(parts) == 4 and parts[2] == "members":
                    name = find_member(built, parts[3]).name
                    return _json(request, 200, next(m for m in described["members"] if m["name"] == name))
        except ActionError as e:
            return _json(request, e.status, {"error": str(e)})
        return _json(request, 404, {"error": "no such API resource"})

    def render_POST(self, request: Request) -> bytes | int:  # noqa: N802
        root = self._root
        refusal = root.guard.refusal(request)
        if refusal is not None:
            return _json(request, 403, {"error": refusal})
        parts = self._path(request)
        if parts == ["reload"]:
            try:
                return _json(request, 200, {"reloaded": root.manager.reload(who=_who(request))})
            except ActionError as e:
                return _json(request, e.status, {"error": str(e)})
        if not (len(parts) in (3, 4) and parts[0] == "balancers" and parts[2] == "members"):
            return _json(request, 404, {"error": "POST to /api/balancers/NAME/members[/ROUTE]"})
        try:
            content = request.content
            body = json.loads((content.read() if content is not None else b"") or b"{}")
        except ValueError as e:
            return _json(request, 400, {"error": f"the body is not JSON: {e}"})
        if not isinstance(body, dict):
            return _json(request, 400, {"error": "the body must be a JSON object"})
        def failed(e: ActionError) -> bytes:
            return _json(request, e.status, {"error": str(e)})

        try:
            if len(parts) == 3:
                added = root.manager.add(
                    parts[1], str(body.get("url", "")), str(body.get("route", "")),
                    body.get("loadfactor", 1.0), who=_who(request),
                )
                return _when_done(request, added, lambda value: _json(request, 201, value), failed)
            change = root.manager.act(
                parts[1], parts[3], str(body.get("action", "")), body.get("loadfactor"),
                who=_who(request),
            )
        except ActionError as e:
            return failed(e)
        return _when_done(request, change, lambda value: _json(request, 200, value), failed)


class _Static(Resource):
    """
    The page's own files (the chart script, and uPlot with its licence,
    vendored from the npm registry): read once, served from the admin
    listener, never from a CDN.
    """

    isLeaf = True
    _TYPES = {
        ".js": b"text/javascript; charset=utf-8",
        ".css": b"text/css; charset=utf-8",
        ".LICENSE": b"text/plain; charset=utf-8",
    }

    def __init__(self) -> None:
        super().__init__()
        from importlib.resources import files

        folder = files("twisted_lb.admin") / "static"
        self._files = {
            name.encode(): (folder / name).read_bytes()
            for name in ("uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE", "charts.js")
        }

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        name = b"/".join(request.postpath or [])
        body = self._files.get(name)
        if body is None:
            return _answer(request, 404, b"text/plain; charset=utf-8", b"no such file\n")
        kind = next(
            (t for ext, t in self._TYPES.items() if name.decode().endswith(ext)),
            b"application/octet-stream",
        )
        return _answer(request, 200, kind, body)


class _Metrics(Resource):
    isLeaf = True

    def __init__(self, metrics: RequestMetrics) -> None:
        super().__init__()
        self._metrics = metrics

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        accept = request.getHeader(b"accept")
        body, content_type = self._metrics.render(None if accept is None else accept.decode("latin-1"))
        return _answer(request, 200, content_type.encode("latin-1"), body)


class AdminRoot(Resource):
    """
    The admin listener's root resource.

    @ivar manager: applies the actions.
    @ivar guard: the cross-site checks and token.
    @ivar pinned: the sessions seen on draining members.
    """

    def __init__(
        self,
        manager: Manager,
        guard: CrossSiteGuard,
        metrics: RequestMetrics,
        pinned: PinnedSessions | None = None,
    ) -> None:
        super().__init__()
        self.manager = manager
        self.guard = guard
        self.pinned = pinned
        #: Which process this admin listener shows, when there are several.
        self.note = ""
        #: Gives the page's version, uptime, configuration file and last reload
        #: (see L{render_page}'s C{about}), when set.
        self.about: Callable[[], dict[str, Any]] | None = None
        #: The group of proxies sharing this one's state ([cluster]), or None.
        self.cluster: Any = None
        self.putChild(b"", _Page(self))
        self.putChild(b"action", _FormAction(self))
        self.putChild(b"api", _Api(self))
        self.putChild(b"metrics", _Metrics(metrics))
        self.putChild(b"static", _Static())
        #: The last 15 minutes per member (L{MemberSeries}), for the charts; set by the service.
        self.series: MemberSeries | None = None

    def describe_self(self) -> dict[str, Any] | None:
        """The proxy's version, uptime, configuration file and last reload, if known."""
        return None if self.about is None else self.about()
    def cluster_section(self) -> str:
        """The page's section for the group of proxies, or nothing without [cluster]."""
        return render_cluster(self.cluster.describe()) if self.cluster is not None else ""
