"""How the kernel is set up: numba's threading layer, and the error when numba is missing."""

from __future__ import annotations

import subprocess
import sys

from swarmgym.batched import kernel


def test_kernel__uses_the_workqueue_threading_layer():
    """numba's OpenMP layer shares a runtime with torch and slows both; the kernel asks for workqueue."""
    assert kernel.numba.config.THREADING_LAYER == "workqueue"


def test_kernel__without_numba_says_which_package_is_missing():
    code = "import sys; sys.modules['numba'] = None\nimport swarmgym.batched"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError") and "'numba' package" in last, last
