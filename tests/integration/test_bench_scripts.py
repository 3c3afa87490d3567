"""Every benchmark under bench/ still starts: its imports resolve and it parses its arguments.

The benchmarks are run by hand (their figures are in docs/), so nothing else notices when a change
to the package moves a name one of them imports; `--help` imports the whole script and exits
before any work.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.environment import REPO_ROOT

SCRIPTS = sorted(p for p in (REPO_ROOT / "bench").glob("*.py") if not p.name.startswith("_"))


def test_there_are_benchmarks_to_check() -> None:
    assert {"throughput.py", "quality.py", "instance_scale.py", "burst.py"} <= {p.name for p in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_the_benchmark_starts(script) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: "), done.stdout[:500]
