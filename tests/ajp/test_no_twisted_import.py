"""
The AJP codec is sans-IO: importing it must not import Twisted.

The C{ajp} package holds the codec and its container role only; the proxy's
Twisted client protocol and pool live beside the AJP backend
(C{twisted_lb.backends.ajp_protocol}, C{twisted_lb.backends.ajp_pool}).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import twisted_lb.ajp

_ROOT = Path(__file__).resolve().parents[2]

_CODEC_MODULES = [
    "twisted_lb.ajp",
    "twisted_lb.ajp._connection",
    "twisted_lb.ajp._constants",
    "twisted_lb.ajp._decode",
    "twisted_lb.ajp._encode",
    "twisted_lb.ajp._framing",
    "twisted_lb.ajp._state",
    "twisted_lb.ajp._wire",
    "twisted_lb.ajp.errors",
    "twisted_lb.ajp.events",
]

#: The one module of the package that uses Twisted: the container role (the
#: test members' side of the protocol), built on the codec alone.
_CONTAINER_MODULE = "twisted_lb.ajp.container"

_PUBLIC = {
    "AJPConnection", "Role", "NEED_DATA", "ForwardRequest", "RequestBody", "SendHeaders",
    "SendBodyChunk", "GetBodyChunk", "EndResponse", "CPing", "CPong", "Shutdown", "Ping",
    "ConnectionClosed", "AJPProtocolError", "LocalProtocolError", "RemoteProtocolError",
    "RequestTooLarge", "DEFAULT_PACKET_SIZE", "MAX_PACKET_SIZE", "reason_phrase",
}  # fmt: skip


def test_codec_imports_no_twisted() -> None:
    """Importing every codec module in a fresh interpreter leaves Twisted unimported."""
    code = (
        "import importlib, sys\n"
        f"for name in {_CODEC_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'twisted' or m.startswith('twisted.'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_public_names_exported() -> None:
    """Every documented public name is in twisted_lb.ajp.__all__ and importable."""
    assert _PUBLIC <= set(twisted_lb.ajp.__all__)
    for name in twisted_lb.ajp.__all__:
        assert hasattr(twisted_lb.ajp, name)


def test_package_holds_only_the_codec_and_the_container() -> None:
    """
    Every module of C{twisted_lb/ajp/} is a codec module or the container
    role: a new Twisted adapter there is refused, and so is one that is not
    listed above (so the no-Twisted test covers it).
    """
    package = _ROOT / "twisted_lb" / "ajp"
    found = {
        "twisted_lb.ajp" if path.stem == "__init__" else f"twisted_lb.ajp.{path.stem}"
        for path in package.glob("*.py")
    }
    assert found == {*_CODEC_MODULES, _CONTAINER_MODULE}


def test_container_imports_no_proxy_module() -> None:
    """
    The container role uses the codec and Twisted, nothing of the proxy: the
    code is read with C{ast}, so every import counts wherever it stands.
    """
    tree = ast.parse((_ROOT / "twisted_lb" / "ajp" / "container.py").read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module)
    proxy = sorted(
        name
        for name in imported
        if name.startswith("twisted_lb") and not name.startswith("twisted_lb.ajp")
    )
    assert proxy == []
