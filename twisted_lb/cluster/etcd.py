"""
An etcd v3 client for Twisted, on etcd's HTTP/JSON gateway (C{/v3/...}) and
treq: ranges, conditional puts (transactions comparing a key's
C{mod_revision}), leases and their keep-alives, and watch streams. Keys and
values travel base64-encoded, as the gateway wants them.

Several endpoints (the members of an etcd cluster) may be given: a request
that cannot be sent, times out, or meets a member without quorum goes to the
next one; the one that answered is used first next time. When none answers,
the request fails with L{StoreUnavailable}, which names them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import treq
from treq.client import HTTPClient
from twisted.internet import defer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    HTTPConnectionPool,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS, IResponse
from zope.interface import implementer

__all__ = [
    "Compacted",
    "EtcdClient",
    "EtcdError",
    "KeyValue",
    "StoreUnavailable",
    "Watch",
]

_log = Logger()

#: gRPC status codes the gateway returns that mean "ask another member".
_UNAVAILABLE = {4, 14}  # DEADLINE_EXCEEDED, UNAVAILABLE (no leader, timed out, stopping)
_UNAUTHENTICATED = 16
_OUT_OF_RANGE = 11  # a revision that has been compacted
#: The longest answer, or line of a watch stream, we accept (bounded memory).
MAX_WATCH_LINE = 64 * 1024 * 1024


class StoreUnavailable(Exception):
    """No etcd endpoint answered (refused, timed out, or without quorum)."""


class EtcdError(Exception):
    """
    etcd answered with an error that another member would give too.

    @ivar code: the gRPC status code.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Compacted(Exception):
    """
    The revision asked for is gone (compacted): reload the whole state.

    @ivar revision: the oldest revision etcd still has.
    """

    def __init__(self, revision: int) -> None:
        super().__init__(f"revision compacted (oldest kept: {revision})")
        self.revision = revision


@attrs.frozen
class KeyValue:
    """One key of etcd, as a range or a watch event gives it."""

    key: str
    value: bytes
    mod_revision: int
    create_revision: int = 0
    lease: int = 0

    @classmethod
    def from_json(cls, kv: dict[str, Any]) -> KeyValue:
        return cls(
            key=_b64decode(kv["key"]).decode("utf-8", "replace"),
            value=_b64decode(kv.get("value", "")),
            mod_revision=int(kv.get("mod_revision", 0)),
            create_revision=int(kv.get("create_revision", 0)),
            lease=int(kv.get("lease", 0)),
        )


def _b64(data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text) if text else b""


def _range_end(prefix: str) -> str:
    raw = bytearray(prefix.encode("utf-8"))
    raw[-1] += 1
    return base64.b64encode(bytes(raw)).decode("ascii")


@implementer(IPolicyForHTTPS)
class _TLSPolicy:
    """Verify etcd's certificates against C{ca_file}; present a client certificate if given."""

    def __init__(self, ca_file: str | None, certificate: str | None, key: str | None) -> None:
        from twisted.internet import ssl

        self._trust: Any = None
        if ca_file is not None:
            with open(ca_file, "rb") as f:
                self._trust = ssl.Certificate.loadPEM(f.read())
        self._client: Any = None
        if certificate is not None:
            with open(certificate, "rb") as f:
                pem = f.read()
            if key is not None:
                with open(key, "rb") as f:
                    pem += b"\n" + f.read()
            self._client = ssl.PrivateCertificate.loadPEM(pem)

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:  # noqa: N802 - Twisted API
        from twisted.internet import ssl

        return ssl.optionsForClientTLS(
            hostname.decode("ascii"),
            trustRoot=self._trust if self._trust is not None else ssl.platformTrust(),
            clientCertificate=self._client,
        )


class _TooLarge(Exception):
    pass


async def _read_bounded(response: IResponse, limit: int) -> bytes:
    """The body of C{response}, or an error once it grows past C{limit} bytes."""
    parts: list[bytes] = []
    size = [0]

    def collect(data: bytes) -> None:
        size[0] += len(data)
        if size[0] > limit:
            raise _TooLarge(f"answer larger than {limit} bytes")
        parts.append(data)

    await treq.collect(response, collect)
    return b"".join(parts)


def _why(error: BaseException) -> str:
    """A transport error in words (Agent's errors wrap the failures that caused them)."""
    reasons = getattr(error, "reasons", None)
    if reasons:
        return "; ".join(r.getErrorMessage() or r.type.__name__ for r in reasons)
    return str(error) or type(error).__name__


class _Unanswered(Exception):
    """One endpoint did not answer usefully; try the next."""


class EtcdClient:
    """
    A client of one etcd cluster.

    @ivar endpoints: the client URLs, in the order they are tried.
    @ivar current: the endpoint that answered last (tried first).
    """

    def __init__(
        self,
        reactor: Any,
        endpoints: Sequence[str],
        *,
        timeout: float = 2.0,
        ca_file: str | None = None,
        certificate: str | None = None,
        key: str | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        """
        @raise OSError: a TLS file cannot be read.
        @raise ValueError: a TLS file is not PEM.
        """
        self.reactor = reactor
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.current = 0
        self.timeout = timeout
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 4
        self._pool.retryAutomatically = False
        policy: Any = None
        if any(e.startswith("https:") for e in self.endpoints):
            policy = _TLSPolicy(ca_file, certificate, key)
        agent = (
            Agent(reactor, contextFactory=policy, pool=self._pool)
            if policy
            else Agent(reactor, pool=self._pool)
        )
        self._http = HTTPClient(agent)
        self._user, self._password = user, password
        self._token: str | None = None
        self._pending: set[defer.Deferred[Any]] = set()
        self._closed = False
        #: Called with the new endpoint when requests move to another one.
        self.on_failover: list[Callable[[str], None]] = []

    @property
    def endpoint(self) -> str:
        """The endpoint tried first."""
        return self.endpoints[self.current]

    def describe(self) -> str:
        """The store in words, for messages: C{etcd (http://a:2379, http://b:2379)}."""
        return "etcd (" + ", ".join(self.endpoints) + ")"

    def close(self) -> defer.Deferred[None]:
        """Cancel the requests in flight and close the pooled connections."""
        self._closed = True
        for request in list(self._pending):
            request.cancel()
        return self._pool.closeCachedConnections()

    # -- requests ------------------------------------------------------------

    def _headers(self) -> Headers:
        return Headers({b"Authorization": [self._token.encode()]} if self._token else {})

    async def _post_once(self, endpoint: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            request = self._http.post(
                endpoint + path, json=body, headers=self._headers(), timeout=self.timeout
            )
            self._pending.add(request)
            try:
                response = await request
                data = json.loads(await _read_bounded(response, MAX_WATCH_LINE))
            finally:
                self._pending.discard(request)
        except ValueError as e:
            raise _Unanswered(f"{endpoint}: answer is not JSON: {e}") from None
        except Exception as e:  # noqa: BLE001 - any transport failure: refused, reset, timed out, cancelled
            raise _Unanswered(f"{endpoint}: {_why(e)}") from None
        if not isinstance(data, dict):
            raise _Unanswered(f"{endpoint}: answer is not a JSON object")
        if "code" in data and "header" not in data and "result" not in data:
            code = int(data.get("code", 2))
            message = str(data.get("message") or data.get("error") or "error")
            if code in _UNAVAILABLE:
                raise _Unanswered(f"{endpoint}: {message}")
            raise EtcdError(code, message)
        return data

    async def _authenticate(self, endpoint: str) -> None:
        self._token = None
        data = await self._post_once(
            endpoint, "/v3/auth/authenticate", {"name": self._user, "password": self._password}
        )
        token = data.get("token")
        if not isinstance(token, str):
            raise EtcdError(_UNAUTHENTICATED, "etcd authentication gave no token")
        self._token = token

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """
        POST C{body} to C{path} of the first endpoint that answers.

        @raise StoreUnavailable: none answered.
        @raise EtcdError: etcd refused the request.
        """
        problems = []
        count = len(self.endpoints)
        for step in range(count):
            if self._closed:
                raise StoreUnavailable(f"{self.describe()}: the client is closed")
            index = (self.current + step) % count
            endpoint = self.endpoints[index]
            try:
                if self._user is not None and self._token is None:
                    await self._authenticate(endpoint)
                try:
                    data = await self._post_once(endpoint, path, body)
                except EtcdError as e:
                    if e.code != _UNAUTHENTICATED or self._user is None:
                        raise
                    await self._authenticate(endpoint)  # the token expired
                    data = await self._post_once(endpoint, path, body)
            except _Unanswered as e:
                problems.append(str(e))
                continue
            if index != self.current:
                self.current = index
                _log.info("etcd: now using {endpoint}", endpoint=endpoint)
                for callback in list(self.on_failover):
                    callback(endpoint)
            return data
        raise StoreUnavailable(f"{self.describe()} unreachable: " + "; ".join(problems))

    def call(self, path: str, body: dict[str, Any]) -> defer.Deferred[dict[str, Any]]:
        """L{post} as a Deferred."""
        return defer.Deferred.fromCoroutine(self.post(path, body))

    # -- key-value -----------------------------------------------------------

    async def range_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        """
        Every key under C{prefix} and the store's revision they are read at.
        """
        data = await self.post(
            "/v3/kv/range", {"key": _b64(prefix), "range_end": _range_end(prefix)}
        )
        kvs = [KeyValue.from_json(kv) for kv in data.get("kvs", [])]
        return kvs, int(data["header"]["revision"])

    async def get(self, key: str) -> KeyValue | None:
        """One key, or C{None} when it does not exist."""
        data = await self.post("/v3/kv/range", {"key": _b64(key)})
        kvs = data.get("kvs", [])
        return KeyValue.from_json(kvs[0]) if kvs else None

    async def put_if(
        self, key: str, value: bytes, mod_revision: int, lease: int = 0
    ) -> tuple[bool, int, KeyValue | None]:
        """
        Put C{value} at C{key} only if the key was last changed at
        C{mod_revision} (0: the key does not exist): a transaction.

        A request that timed out on one endpoint may have been applied all the
        same; when the retry finds C{value} there already, that counts as done.

        @return: whether it was written, the store's revision after it, and,
            when it was not, the key as it is now.
        """
        put: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            put["lease"] = str(lease)
        data = await self.post(
            "/v3/kv/txn",
            {
                "compare": [
                    {
                        "key": _b64(key),
                        "target": "MOD",
                        "result": "EQUAL",
                        "mod_revision": str(mod_revision),
                    }
                ],
                "success": [{"request_put": put}],
                "failure": [{"request_range": {"key": _b64(key)}}],
            },
        )
        revision = int(data["header"]["revision"])
        if data.get("succeeded"):
            return True, revision, None
        current = None
        for response in data.get("responses", []):
            kvs = response.get("response_range", {}).get("kvs", [])
            if kvs:
                current = KeyValue.from_json(kvs[0])
        if current is not None and current.value == value:
            return True, current.mod_revision, None
        return False, revision, current

    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        """Put C{value} at C{key}; return the store's revision after it."""
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        data = await self.post("/v3/kv/put", body)
        return int(data["header"]["revision"])

    async def delete(self, key: str) -> int:
        """Delete C{key}; return the store's revision after it."""
        data = await self.post("/v3/kv/deleterange", {"key": _b64(key)})
        return int(data["header"]["revision"])

    # -- leases --------------------------------------------------------------

    async def grant(self, ttl: int) -> int:
        """A new lease of C{ttl} seconds; return its ID."""
        data = await self.post("/v3/lease/grant", {"TTL": str(ttl)})
        if data.get("error"):
            raise EtcdError(2, str(data["error"]))
        return int(data["ID"])

    async def keepalive(self, lease: int) -> int:
        """Renew C{lease}; return its new TTL (0: it expired, grant another)."""
        data = await self.post("/v3/lease/keepalive", {"ID": str(lease)})
        return int(data.get("result", {}).get("TTL", 0))

    async def revoke(self, lease: int) -> None:
        """End C{lease} (its keys are deleted)."""
        await self.post("/v3/lease/revoke", {"ID": str(lease)})

    # -- watch ---------------------------------------------------------------

    def watch(
        self,
        prefix: str,
        start_revision: int,
        on_events: Callable[[list[tuple[str, KeyValue]], int], None],
    ) -> Watch:
        """
        Follow the changes under C{prefix} from C{start_revision} on, on the
        current endpoint.

        @param on_events: called with each batch of events (C{("PUT", kv)} or
            C{("DELETE", kv)}) and the revision of the batch.
        @return: the watch; its C{done} fires (with a L{Failure}) when the
            stream ends: L{Compacted} when C{start_revision} is gone,
            L{StoreUnavailable} when the endpoint cannot be reached.
        """
        return Watch(self, prefix, start_revision, on_events)


class _LineStream(Protocol):
    """Splits a watch response body into JSON lines; bounded."""

    def __init__(self, watch: Watch) -> None:
        self._watch = watch
        self._buffer = b""

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted API
        self._buffer += data
        while b"\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\n")
            if line.strip():
                self._watch._line(line)
        if len(self._buffer) > MAX_WATCH_LINE:
            self._watch._end(Failure(EtcdError(8, "watch message too large")))
            if self.transport is not None:
                self.transport.stopProducing()  # type: ignore[attr-defined]

    def connectionMade(self) -> None:  # noqa: N802
        if self._watch._ended and self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]  # cancelled meanwhile

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        self._watch._end(
            Failure(StoreUnavailable(f"watch stream from {self._watch.endpoint} ended"))
        )
        self._watch._closed()


class Watch:
    """
    One watch stream (see L{EtcdClient.watch}).

    @ivar done: fires with a failure saying why the stream ended.
    @ivar closed: fires once its connection is closed (or was never made).
    @ivar revision: the revision of the last batch received.
    """

    def __init__(
        self,
        client: EtcdClient,
        prefix: str,
        start_revision: int,
        on_events: Callable[[list[tuple[str, KeyValue]], int], None],
    ) -> None:
        self.endpoint = client.endpoint
        self.revision = start_revision - 1
        self.done: defer.Deferred[None] = defer.Deferred()
        self.closed: defer.Deferred[None] = defer.Deferred()
        self._on_events = on_events
        self._protocol: _LineStream | None = None
        self._ended = False
        body = {
            "create_request": {
                "key": _b64(prefix),
                "range_end": _range_end(prefix),
                "start_revision": str(start_revision),
            }
        }
        self._request = client._http.post(
            self.endpoint + "/v3/watch", json=body, headers=client._headers(), unbuffered=True
        )
        timer = client.reactor.callLater(client.timeout, self._request.cancel)

        def started(response: IResponse) -> None:
            if timer.active():
                timer.cancel()
            self._protocol = _LineStream(self)
            response.deliverBody(self._protocol)

        def failed(failure: Failure) -> None:
            if timer.active():
                timer.cancel()
            self._closed()
            self._end(
                Failure(
                    StoreUnavailable(
                        f"watch on {self.endpoint}: {failure.getErrorMessage() or failure.type.__name__}"
                    )
                )
            )

        self._request.addCallbacks(started, failed)

    def _line(self, line: bytes) -> None:
        try:
            message = json.loads(line)
            if not isinstance(message, dict):
                raise ValueError("not a JSON object")
            if "error" in message and "result" not in message:
                error = message["error"]
                if not isinstance(error, dict):  # an error before the stream began
                    error = {"grpc_code": message.get("code", 2), "message": error}
                code = int(error.get("grpc_code", error.get("code", 2)))
                raise EtcdError(code, str(error.get("message", error)))
            result = message.get("result", {})
            if result.get("canceled"):
                compact = int(result.get("compact_revision", 0))
                reason = result.get("cancel_reason", "canceled by etcd")
                raise Compacted(compact) if compact else StoreUnavailable(reason)
            batch = [
                (e.get("type", "PUT"), KeyValue.from_json(e["kv"]))
                for e in result.get("events", [])
            ]
        except (EtcdError, Compacted, StoreUnavailable):
            self._end(Failure())
            self.cancel()
            return
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            self._end(Failure(EtcdError(2, f"watch stream from {self.endpoint}: bad message: {e}")))
            self.cancel()
            return
        if not batch:
            return
        self.revision = max(kv.mod_revision for _, kv in batch)
        self._on_events(batch, self.revision)

    def _closed(self) -> None:
        if not self.closed.called:
            self.closed.callback(None)

    def _end(self, failure: Failure) -> None:
        if self._ended:
            return
        self._ended = True
        self.done.errback(failure)

    def cancel(self) -> None:
        """Stop following: close the stream (C{done} fails with L{StoreUnavailable} if it had not ended)."""
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.stopProducing()  # type: ignore[attr-defined]
        else:
            self._request.cancel()
        self._end(Failure(StoreUnavailable("watch cancelled")))
