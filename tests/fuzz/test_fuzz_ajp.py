"""
A bounded run of the coverage-guided AJP fuzz target (C{fuzz_ajp.py}) in the
test suite: 20 000 inputs, no finding, and coverage well past the seeds.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

TARGET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_ajp.py")
RUNS = int(os.environ.get("LB_FUZZ_RUNS", "20000"))

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None, reason="atheris is not installed"
)


def test_fuzz_target_runs_clean(tmp_path) -> None:
    """libFuzzer executes every run and reports no crash, leak or timeout."""
    done = subprocess.run(
        [sys.executable, TARGET, f"-runs={RUNS}", "-timeout=10", "-rss_limit_mb=1024"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert f"Done {RUNS} runs" in output, output[-3000:]
    initial = int(re.search(r"INITED cov: (\d+)", output).group(1))
    final = int(re.search(r"DONE\s+cov: (\d+)", output).group(1))
    assert final > initial, output[-2000:]
    assert os.listdir(tmp_path) == [], "libFuzzer wrote a crash or leak file"
