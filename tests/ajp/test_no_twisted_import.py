"""
The AJP codec is sans-IO: importing it must not import Twisted.
"""

from __future__ import annotations

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
