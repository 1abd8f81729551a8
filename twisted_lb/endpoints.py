"""
Server endpoint strings (a C{[[listen]]} C{endpoint}, the C{[admin]}
C{endpoint}) made into Twisted endpoints, with what goes wrong reported as a
L{ConfigError} rather than a traceback.

Twisted's C{ssl:} endpoint reads its files (C{privateKey=}, C{certKey=},
C{extraCertChain=}) as the string is parsed, so a missing or unreadable file,
or one that is not PEM, fails here already, at start-up and with C{--check}.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from OpenSSL import SSL, crypto
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IStreamServerEndpoint

from twisted_lb.config.model import ConfigError
from twisted_lb.tls import openssl_reason

__all__ = ["endpoint_errors", "server_endpoint"]


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
    C{serverFromString(reactor, description)}.

    @raise ConfigError: the string or a file it names is not usable (see
        L{endpoint_errors}).
    """
    with endpoint_errors(source, key, description):
        return serverFromString(reactor, description)
