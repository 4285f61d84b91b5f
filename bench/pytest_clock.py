"""A pytest plugin for bench/suite_cpu.py --by-test: each pytest process (pytest-xdist's workers too) appends a line
`time pid nodeid` to the file $IZF_TEST_CLOCK when a test starts, so that a process can be placed by the test its
pytest ancestor was running when it first appeared, and a pytest process's own CPU by the test it ran meanwhile.

    PYTHONPATH=bench PYTEST_ADDOPTS="-p pytest_clock" python bench/suite_cpu.py --by-test -- bash .ci/run

(suite_cpu.py sets both itself with --by-test.) It measures the suite, not IZF.
"""

from __future__ import annotations

import os
import time


def pytest_runtest_logstart(nodeid: str, location: tuple) -> None:
    path = os.environ.get("IZF_TEST_CLOCK")
    if path:
        with open(path, "a") as f:
            f.write(f"{time.time():.3f} {os.getpid()} {nodeid}\n")
