"""Fixtures that run real Apache Tomcat 10 nodes for the interop tests.

Every test in this directory is marked C{interop}. If Tomcat (or a JDK) is missing, every test
here is skipped with the reason, unless C{LB_REQUIRE_TOMCAT=1}, which turns the skip into a
failure (for CI, where a silently skipped interop suite would prove nothing).

Session-scoped groups (each a L{TomcatGroup}: iterable, indexable by position or name):

  - C{tomcat_pair}: tomcat1/tomcat2, HTTP + AJP (secret L{AJP_SECRET}), no replication.
    The only group with Debian's examples webapp at C{/examples} (deploying it adds about a
    second to every start and restart, so the other groups go without).
  - C{tomcat_pair_nio2}: the same with Tomcat's NIO2 AJP connector (C{AjpNio2Protocol}), which
    docs/performance.md recommends behind twisted_lb.
  - C{tomcat_cluster}: tomcat1/tomcat2 replicating sessions (DeltaManager, synchronous
    replication, JvmRouteBinderValve, static membership); separate processes from the pair.
    The webapp is also at C{/share} (the second seed's context).
  - C{tomcat_https_pair}: hosta/hostb with an HTTPS connector on a self-signed certificate.
    The webapp is also at C{/xtam} (the first seed's context).

A test may kill, stop or pause nodes: after each test, nodes of the groups already started are
resumed or restarted (same ports), and a restarted cluster waits for replication again.

C{LB_INTEROP_CACHE} overrides where the compiled test webapp is cached.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .tomcat import (
    AJP_CONNECTORS,
    TomcatGroup,
    TomcatNode,
    build_webapp,
    find_catalina_home,
    missing_prerequisites,
)

#: The AJP connector secret of the nodes of every group.
AJP_SECRET = "s3cr3t-interop"
REQUIRE_ENV = "LB_REQUIRE_TOMCAT"
_HERE = Path(__file__).resolve().parent

#: Groups started in this session, restored after each test and stopped at the end.
_LIVE_GROUPS: list[TomcatGroup] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "interop: runs against a real Apache Tomcat started by the tests"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.interop)


def _required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def catalina_home() -> Path:
    """The Tomcat installation (C{$CATALINA_HOME} or C{/usr/share/tomcat10}).

    Skips (or, with C{LB_REQUIRE_TOMCAT=1}, fails) when Tomcat or a JDK is missing.
    """
    home = find_catalina_home()
    reason = missing_prerequisites(home)
    if reason is not None:
        if _required():
            pytest.fail(f"{REQUIRE_ENV}=1 but: {reason}", pytrace=False)
        pytest.skip(f"interop tests skipped: {reason}")
    assert home is not None
    return home


@pytest.fixture(autouse=True)
def _interop_prerequisites(catalina_home: Path) -> None:
    """Make every test here skip/fail when Tomcat is missing, even without Tomcat fixtures."""


@pytest.fixture(scope="session")
def tomcat_webapp(catalina_home: Path) -> Path:
    """The compiled test webapp directory (built once, cached by a hash of its sources)."""
    cache = os.environ.get("LB_INTEROP_CACHE")
    dest = (
        Path(cache)
        if cache
        else Path(tempfile.gettempdir()) / f"twisted_lb-interop-webapp-{os.getuid()}"
    )
    return build_webapp(dest, catalina_home)


def _group(
    tmp_path_factory: pytest.TempPathFactory,
    catalina_home: Path,
    webapp: Path,
    prefix: str,
    names: list[str],
    *,
    clustered: bool = False,
    https: bool = False,
    contexts: list[str] | None = None,
    ajp_connector: str | None = None,
    examples: bool = False,
) -> TomcatGroup:
    nodes = [
        TomcatNode(
            name,
            webapp,
            base_dir=tmp_path_factory.mktemp(f"{prefix}-{name}-", numbered=True),
            catalina_home=catalina_home,
            ajp_secret=AJP_SECRET,
            https=https,
            contexts=list(contexts or []),
            ajp_connector_attrs={"protocol": AJP_CONNECTORS[ajp_connector]} if ajp_connector else {},
            examples=examples,
        )
        for name in names
    ]
    return TomcatGroup(nodes, clustered=clustered)


def _run_group(group: TomcatGroup) -> Iterator[TomcatGroup]:
    group.start()
    _LIVE_GROUPS.append(group)
    try:
        yield group
    finally:
        _LIVE_GROUPS.remove(group)
        group.stop()


@pytest.fixture(scope="session")
def tomcat_pair(
    tmp_path_factory: pytest.TempPathFactory, catalina_home: Path, tomcat_webapp: Path
) -> Iterator[TomcatGroup]:
    """Two independent nodes tomcat1/tomcat2 (HTTP + AJP), started together, with Debian's
    examples at C{/examples}."""
    yield from _run_group(
        _group(
            tmp_path_factory,
            catalina_home,
            tomcat_webapp,
            "pair",
            ["tomcat1", "tomcat2"],
            examples=True,
        )
    )


@pytest.fixture(scope="session")
def tomcat_pair_nio2(
    tmp_path_factory: pytest.TempPathFactory, catalina_home: Path, tomcat_webapp: Path
) -> Iterator[TomcatGroup]:
    """Two independent nodes tomcat1/tomcat2 whose AJP connector is NIO2."""
    yield from _run_group(
        _group(
            tmp_path_factory,
            catalina_home,
            tomcat_webapp,
            "pair-nio2",
            ["tomcat1", "tomcat2"],
            ajp_connector="nio2",
        )
    )


@pytest.fixture(scope="session")
def tomcat_cluster(
    tmp_path_factory: pytest.TempPathFactory, catalina_home: Path, tomcat_webapp: Path
) -> Iterator[TomcatGroup]:
    """Two replicating nodes tomcat1/tomcat2 (the second seed), started one after the other."""
    yield from _run_group(
        _group(
            tmp_path_factory,
            catalina_home,
            tomcat_webapp,
            "cluster",
            ["tomcat1", "tomcat2"],
            clustered=True,
            contexts=["/share"],
        )
    )


@pytest.fixture(scope="session")
def tomcat_https_pair(
    tmp_path_factory: pytest.TempPathFactory, catalina_home: Path, tomcat_webapp: Path
) -> Iterator[TomcatGroup]:
    """Two nodes hosta/hostb with HTTPS (self-signed) besides HTTP and AJP (the first seed)."""
    yield from _run_group(
        _group(
            tmp_path_factory,
            catalina_home,
            tomcat_webapp,
            "https",
            ["hosta", "hostb"],
            https=True,
            contexts=["/xtam"],
        )
    )


@pytest.fixture(autouse=True)
def _restore_tomcat_nodes() -> Iterator[None]:
    """After each test, resume paused nodes and restart dead ones of the live groups."""
    yield
    for group in list(_LIVE_GROUPS):
        group.ensure_running()
