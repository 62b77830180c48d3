"""How the kernel is set up: numba's threading layer, and the error when numba is missing."""

from __future__ import annotations

import ast
import inspect
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


def _stage_templates(fn, target: str) -> list[dict]:
    """The jit options of ``fn``'s numba implementations, in the order numba tries them on ``target``."""
    from numba.core import utils
    from numba.core.registry import cpu_target
    from numba.core.target_extension import target_registry

    ctx = cpu_target.typing_context
    ctx.refresh()
    fnty = ctx.resolve_value_type(fn)
    order = utils.order_by_target_specificity(target_registry[target], fnty.templates, fnkey=fnty.key[0])
    return [template._jit_options for template in order]


def _stage_names() -> list[str]:
    """Names of the functions in the kernel module's source decorated ``@stage``."""
    tree = ast.parse(inspect.getsource(kernel))
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and any(isinstance(d, ast.Name) and d.id == "stage" for d in node.decorator_list)
    ]


def test_stages__are_inlined_on_cpu_and_plain_device_functions_on_cuda():
    """Every stage compiles with ``forceinline`` on the CPU (a call would copy the State, Instance and
    Rules tuples), and CUDA resolves it to the generic implementation without that option (the CUDA
    target is not run here: no GPU; this checks which implementation it would compile)."""
    names = _stage_names()
    assert {"advance", "complete", "step_env", "encode", "load_instance", "random_valid_action"} <= set(names)
    assert "@register_jitable" not in inspect.getsource(kernel)  # every compiled helper is a stage
    for name in names:
        cpu = _stage_templates(getattr(kernel, name), "cpu")
        cuda = _stage_templates(getattr(kernel, name), "cuda")
        assert cpu[0].get("forceinline") is True, name
        assert len(cuda) == 1 and "forceinline" not in cuda[0], name
