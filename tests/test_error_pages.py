"""
C{[error_pages]}: the proxy's own 502/503/504 answers replaced by a file's
content, on both lanes (a GET on the fast lane, a POST on twisted.web's),
read again on reload; and the configuration's checks.
"""

from __future__ import annotations

import socket
from pathlib import Path

import attrs
import pytest
from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.interop.tomcat import free_port
from twisted_lb.config import ConfigError, load_toml_text, read_config, to_toml
from twisted_lb.service import ProxyService

_PAGE = b"<!doctype html><title>Back soon</title><h1>We are back in a minute</h1>\n"


def _config_text(port: int, dead: int, page: str = "down.html") -> str:
    return (
        f'workers = 1\n[[listen]]\nendpoint = "tcp:{port}:interface=127.0.0.1"\n'
        f'[balancers.app]\n[[balancers.app.members]]\nurl = "ajp://127.0.0.1:{dead}"\n'
        f'[[routes]]\npath = "/"\nbalancer = "app"\n[error_pages]\n503 = "{page}"\n'
    )


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


class ErrorPagesTests(TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.directory = Path(self.mktemp()).resolve()
        self.directory.mkdir(parents=True)
        (self.directory / "down.html").write_bytes(_PAGE)
        self.port = free_port()
        path = self.directory / "site.toml"
        path.write_text(_config_text(self.port, free_port()))
        self.path = path
        self.proxy = ProxyService(read_config(str(path))[0], reactor)
        self.proxy.startService()
        self.addCleanup(self.proxy.stopService)

    def get(self, request: bytes) -> defer.Deferred[bytes]:
        return deferToThread(_exchange, self.port, request)

    @defer.inlineCallbacks
    def test_both_lanes_answer_the_page(self):
        fast = yield self.get(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        web = yield self.get(
            b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
        )
        for answer in (fast, web):
            head, _, body = answer.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 503 "), head)
            self.assertIn(b"\r\ncontent-type: text/html; charset=utf-8", head.lower())
            self.assertIn(b"\r\ncontent-length: %d" % len(_PAGE), head.lower())
            self.assertEqual(body, _PAGE)
        head = yield self.get(b"HEAD /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 503 ") and head.endswith(b"\r\n\r\n"), head)

    @defer.inlineCallbacks
    def test_refusals_stay_plain_text(self):
        """A refused request's answer says what was refused (not the 503 page)."""
        answer = yield self.get(
            b"GET /x HTTP/1.1\r\nHost: x/../y@evil\r\nConnection: close\r\n\r\n"
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 400 "), answer)
        self.assertNotIn(_PAGE, answer)

    @defer.inlineCallbacks
    def test_reload_reads_the_page_again(self):
        (self.directory / "down.html").write_bytes(b"maintenance\n")
        self.proxy.reload()
        answer = yield self.get(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(answer.endswith(b"\r\n\r\nmaintenance\n"), answer)
        # A page that cannot be read refuses the reload; the running one stays.
        (self.directory / "down.html").unlink()
        with self.assertRaises(ConfigError) as raised:
            self.proxy.reload()
        self.assertEqual(raised.exception.key, "error_pages.503")
        answer = yield self.get(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(answer.endswith(b"\r\n\r\nmaintenance\n"), answer)


def test_configuration_checks(tmp_path: Path) -> None:
    (tmp_path / "down.html").write_bytes(_PAGE)
    config = load_toml_text(_config_text(8080, 8009), str(tmp_path / "site.toml"))
    assert config.error_pages == ((503, str(tmp_path / "down.html")),)
    assert "[error_pages]\n503 = " in to_toml(config)
    again = str(tmp_path / "again.toml")
    assert load_toml_text(to_toml(config), again) == attrs.evolve(config, source=again)
    with pytest.raises(ConfigError) as raised:
        load_toml_text(_config_text(8080, 8009).replace("503 =", "404 ="), "site.toml")
    assert raised.value.key == "error_pages.404"
    assert "not a status the proxy answers itself (use 502, 503, 504)" in raised.value.problem
    with pytest.raises(ConfigError) as raised:
        load_toml_text(_config_text(8080, 8009).replace('"down.html"', "3"), "site.toml")
    assert raised.value.key == "error_pages.503"


def test_missing_page_file_stops_start_up(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(_config_text(0, 8009, "nowhere.html"))
    with pytest.raises(ConfigError) as raised:
        ProxyService(read_config(str(path))[0], reactor)
    assert raised.value.key == "error_pages.503"
    assert "nowhere.html cannot be read: No such file or directory" in raised.value.problem
