"""
Server endpoint strings (a C{[[listen]]} C{endpoint}, the C{[admin]}
C{endpoint}) made into Twisted endpoints, with what goes wrong reported as a
L{ConfigError} rather than a traceback.

A listener that does not say C{backlog=} gets the kernel's C{somaxconn}
(L{with_default_backlog}) instead of Twisted's 50, which a crowd of clients
connecting at once overflows (each dropped SYN costs its client a second).

Twisted's C{ssl:} endpoint reads its files (C{privateKey=}, C{certKey=},
C{extraCertChain=}) as the string is parsed, so a missing or unreadable file,
or one that is not PEM, fails here already, at start-up and with C{--check}.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from OpenSSL import SSL, crypto
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IStreamServerEndpoint

from twisted_lb.config.model import ConfigError
from twisted_lb.tls import openssl_reason

__all__ = ["default_backlog", "endpoint_errors", "server_endpoint", "with_default_backlog"]

#: Where Linux says how long a listen queue may be (per network namespace).
SOMAXCONN = "/proc/sys/net/core/somaxconn"
#: The backlog when the kernel does not say.
FALLBACK_BACKLOG = 4096
#: Endpoint kinds that take a backlog, and how many positional arguments
#: come before it (C{tcp:PORT:INTERFACE:BACKLOG}, C{tcp6:PORT:BACKLOG},
#: C{unix:ADDRESS:MODE:BACKLOG}, C{ssl:PORT:KEY:CERT:METHOD:INTERFACE:BACKLOG}).
_BACKLOG_POSITION = {"tcp": 2, "tcp6": 1, "unix": 2, "ssl": 5}
#: A C{:} that separates two arguments (not escaped with a backslash).
_SEPARATOR = re.compile(r"(?<!\\):")


@cache
def default_backlog(path: str = SOMAXCONN) -> int:
    """
    The listen backlog of a listener that does not give one: the kernel's
    C{somaxconn} (the most it grants anyway), else L{FALLBACK_BACKLOG}.
    Read once per process.
    """
    try:
        with open(path) as f:
            value = int(f.read().strip())
    except (OSError, ValueError):
        return FALLBACK_BACKLOG
    return value if value > 0 else FALLBACK_BACKLOG


def with_default_backlog(description: str, backlog: int | None = None) -> str:
    """
    C{description} with C{:backlog=N} added when it is a C{tcp:}, C{tcp6:},
    C{ssl:} or C{unix:} endpoint that does not give a backlog (by name or by
    position); any other string unchanged.

    @param backlog: the backlog to add (default: L{default_backlog}).
    """
    parts = _SEPARATOR.split(description)
    position = _BACKLOG_POSITION.get(parts[0].strip().lower())
    if position is None:
        return description
    arguments = parts[1:]
    if any(a.strip().startswith("backlog=") for a in arguments):
        return description
    if sum("=" not in a for a in arguments) > position:
        return description
    return f"{description}:backlog={backlog if backlog is not None else default_backlog()}"


@contextmanager
def endpoint_errors(source: str, key: str, description: str) -> Iterator[None]:
    """
    Report what making the endpoint of C{description} raises as a
    L{ConfigError} for C{key}: a string Twisted cannot parse, a file it names
    that cannot be read, a file that is not a PEM certificate or key, an
    unknown C{sslmethod=}.

    @param source: the configuration's file, for the error.
    @param key: the endpoint's key, for the error (C{listen[0].endpoint}).
    @param description: the endpoint string.
    @raise ConfigError: in place of those errors.
    """
    try:
        yield
    except ConfigError:
        raise
    except OSError as e:
        if e.filename is not None:
            problem = f"file {e.filename} cannot be read: {e.strerror or e}"
        else:
            problem = str(e) or type(e).__name__
        raise ConfigError(source, key, f"{description!r}: {problem}") from None
    except (crypto.Error, SSL.Error) as e:
        raise ConfigError(
            source,
            key,
            f"{description!r}: the files it names are not a PEM certificate and private key "
            f"({openssl_reason(e)})",
        ) from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        # AttributeError: an sslmethod= that OpenSSL.SSL does not have.
        raise ConfigError(source, key, f"{description!r}: {e}") from None


def server_endpoint(reactor: Any, description: str, source: str, key: str) -> IStreamServerEndpoint:
    """
    C{serverFromString(reactor, description)}, with the default backlog
    (L{with_default_backlog}).

    @raise ConfigError: the string or a file it names is not usable (see
        L{endpoint_errors}).
    """
    with endpoint_errors(source, key, description):
        return serverFromString(reactor, with_default_backlog(description))
