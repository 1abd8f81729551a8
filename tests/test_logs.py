"""The JSON log option (twisted_lb.logs) and its installation by the twistd plugin."""

from __future__ import annotations

import io
import json
import os
import signal
from pathlib import Path

from twisted.application.service import Application
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver, Logger, eventsFromJSONLogFile
from twisted.python.logfile import LogFile

from twisted_lb import tap
from twisted_lb.logs import LogFileSignals, json_file_observer, observer_for


def _log_to(observer) -> Logger:
    return Logger(namespace="twisted_lb.test", observer=observer)


def test_json_lines_read_back_with_the_formatted_text() -> None:
    stream = io.StringIO()
    log = _log_to(json_file_observer(stream))
    log.info("reloaded {source}: {changes}", source="site.toml", changes="nothing changed")
    try:
        raise ZeroDivisionError("no members")
    except ZeroDivisionError:
        log.failure("reload failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["text"] == "reloaded site.toml: nothing changed"
    assert first["source"] == "site.toml"
    assert first["log_namespace"] == "twisted_lb.test"
    assert second["text"].startswith("reload failed\nTraceback")
    assert "ZeroDivisionError" in second["text"]
    events = list(eventsFromJSONLogFile(io.StringIO(stream.getvalue())))
    assert events[0]["changes"] == "nothing changed"


def test_text_format_is_twisted_text() -> None:
    stream = io.StringIO()
    _log_to(observer_for("text", stream)).info("hello {who}", who="operator")
    assert stream.getvalue().rstrip().endswith("[twisted_lb.test#info] hello operator")


def test_twistd_gets_a_json_observer_for_log_format_json(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text(
        'log_format = "json"\n[[listen]]\nendpoint = "tcp:0"\n'
        '[balancers.app]\nmembers = [{ url = "ajp://127.0.0.1:8009" }]\n'
        '[[routes]]\npath = "/"\nbalancer = "app"\n'
    )
    options = tap.Options()
    options.parseOptions(["--config", str(config)])
    options.parent = {"logfile": str(tmp_path / "twistd.log"), "nodaemon": True}
    service = tap._make_service(options, MemoryReactorClock())
    application = Application("lbproxy")
    service.setServiceParent(application)
    observer = application.getComponent(ILogObserver)
    _log_to(observer).info("started")
    service.log_file.flush()
    record = json.loads((tmp_path / "twistd.log").read_text().splitlines()[-1])
    assert record["text"] == "started"


class _Reactor:
    """callFromThread at once (a signal handler's work, in the test's thread)."""

    def callFromThread(self, f, *args) -> None:  # noqa: N802 (Twisted's name)
        f(*args)


def _signals_around(handler) -> dict[int, object]:
    return {s: signal.signal(s, handler) for s in (signal.SIGUSR1, signal.SIGHUP)}


def test_sigusr1_rotates_and_sighup_reopens_the_json_log(tmp_path: Path) -> None:
    """And both signals still reach the handler that was there before (the reload)."""
    seen: list[int] = []
    saved = _signals_around(lambda signum, frame: seen.append(signum))
    log_file = LogFile.fromFullPath(str(tmp_path / "twistd.log"))
    service = LogFileSignals(log_file, _Reactor())
    try:
        service.startService()
        log_file.write("before\n")
        os.kill(os.getpid(), signal.SIGUSR1)
        assert (tmp_path / "twistd.log.1").read_text() == "before\n"
        (tmp_path / "twistd.log").rename(tmp_path / "moved.log")
        os.kill(os.getpid(), signal.SIGHUP)
        log_file.write("after\n")
        log_file.flush()
        assert (tmp_path / "twistd.log").read_text() == "after\n"
        assert seen == [signal.SIGUSR1, signal.SIGHUP]
        service.stopService()
        assert signal.getsignal(signal.SIGUSR1) is not service._on_signal
        os.kill(os.getpid(), signal.SIGUSR1)
        assert seen[-1] == signal.SIGUSR1
    finally:
        log_file.close()
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def test_with_workers_sigusr1_is_left_to_the_supervisor(tmp_path: Path) -> None:
    """Worker 0 sends SIGUSR1 to the supervisor after each manager change: no rotation."""
    seen: list[int] = []
    saved = _signals_around(lambda signum, frame: seen.append(signum))
    log_file = LogFile.fromFullPath(str(tmp_path / "twistd.log"))
    service = LogFileSignals(log_file, _Reactor(), rotate=False)
    try:
        service.startService()
        log_file.write("kept\n")
        os.kill(os.getpid(), signal.SIGUSR1)
        assert not (tmp_path / "twistd.log.1").exists()
        os.kill(os.getpid(), signal.SIGHUP)
        assert seen == [signal.SIGUSR1, signal.SIGHUP]
        service.stopService()
    finally:
        log_file.close()
        for signum, handler in saved.items():
            signal.signal(signum, handler)
