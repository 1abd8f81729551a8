"""The interop harness's Tomcat fixtures, reused for the soak test.

Like the interop tests, the soak is skipped when Tomcat or a JDK is missing, unless
C{LB_REQUIRE_TOMCAT=1} turns the skip into a failure. Every test here is marked C{interop} and
C{slow}.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop.conftest import (  # noqa: F401 - fixtures are found by name
    _interop_prerequisites,
    _restore_tomcat_nodes,
    catalina_home,
    tomcat_cluster,
    tomcat_webapp,
)

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.interop)
            item.add_marker(pytest.mark.slow)
