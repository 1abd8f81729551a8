"""The JSON log option (twisted_lb.logs) and its installation by the twistd plugin."""

from __future__ import annotations

import io
import json
from pathlib import Path

from twisted.application.service import Application
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver, Logger, eventsFromJSONLogFile

from twisted_lb import tap
from twisted_lb.logs import json_file_observer, observer_for


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
