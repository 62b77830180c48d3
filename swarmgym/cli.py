"""The ``swarmgym`` command line: ``swarmgym <command> [options]``.

Commands are implemented in their own modules and imported lazily, so that
``swarmgym --help`` stays fast:

* ``evaluate`` -- evaluate orchestrators on env ids over seeds (:mod:`swarmgym.evaluation`)
* ``train``    -- train the MoE orchestrator with PARL (:mod:`swarmgym.moe.train`)
* ``study``    -- the PARL study and the phase diagram of serial collapse (:mod:`swarmgym.moe.study`)
* ``llm-eval`` -- a language model as the orchestrator, through tools (:mod:`swarmgym.llm.eval`)
* ``replay``   -- one episode's event trace and Gantt chart (:mod:`swarmgym.replay`)
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


class UsageError(ValueError):
    """A bad command-line option: ``str(err)`` is one line that starts with the option's name."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


def check_int(option: str, value: Any, lo: int, hi: int | None = None) -> int:
    """``value`` if it is an integer in ``[lo, hi]``, else :class:`UsageError` naming ``option``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        raise UsageError(option, f"must be an integer in [{lo}, {hi if hi is not None else 'inf'}], got {value!r}")
    return value


def check_number(option: str, value: Any, lo: float, hi: float | None = None) -> float:
    """``value`` if it is a finite number in ``[lo, hi]``, else :class:`UsageError` naming ``option``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < lo
        or (hi is not None and value > hi)
    ):
        raise UsageError(option, f"must be a number in [{lo}, {hi if hi is not None else 'inf'}], got {value!r}")
    return float(value)


def check_device(option: str, device: str) -> str:
    """A torch device this machine has (``cpu``; ``cuda[:k]`` only when CUDA is available)."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(option, f"not a torch device: {device!r} (e.g. 'cpu', 'cuda', 'cuda:1')") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(option, f"{device!r} was requested but CUDA is not available (torch {torch.__version__}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(option, f"{device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(option, f"{device!r} was requested but MPS is not available; use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise UsageError(option, f"unsupported device {device!r}; use 'cpu' or 'cuda'")
    return str(dev)


def check_output_dir(option: str, path: str | Path) -> Path:
    """A folder that exists (created if needed) and accepts new files, else :class:`UsageError`."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(option, f"{str(p)!r} is a file, not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(option, f"cannot write to {str(p)!r} ({exc.strerror or exc})") from None
    return p


def usage_failure(prog: str, exc: BaseException) -> int:
    """Print ``prog: <one line>`` on stderr; returns the usage exit status, 2."""
    print(f"{prog}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
    return 2


COMMANDS = {
    "evaluate": ("swarmgym.evaluation", "evaluate orchestrators on env ids over seeds; writes Markdown and CSV tables"),
    "train": ("swarmgym.moe.train", "train the MoE orchestrator with annealed PARL, then evaluate it beside the hand-coded ones"),
    "study": (
        "swarmgym.moe.study",
        "run the PARL study over seeds, or the phase diagram of serial collapse (--phase-diagram) on a process pool or Ray",
    ),
    "llm-eval": ("swarmgym.llm.eval", "evaluate a language model (any OpenAI-compatible endpoint) as the orchestrator; cached, resumable"),
    "export-policy": ("swarmgym.moe.policy", "write a trained checkpoint's network alone: a small file, safe to load and share"),
    "replay": ("swarmgym.replay", "play one episode with one orchestrator; write its event trace (JSON) and Gantt chart (PNG)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: swarmgym <command> [options]\n\ncommands:")
        for name, (_, doc) in COMMANDS.items():
            print(f"  {name:<10}{doc}")
        print("\n'swarmgym <command> --help' describes a command's options.")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"swarmgym: unknown command {name!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.cli_main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
