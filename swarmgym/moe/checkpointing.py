"""Files that are never half written, and runs that stop cleanly on Ctrl-C or SIGTERM.

Two small tools for long runs (the trainer and the study use them):

* :func:`atomic_write_bytes`, :func:`atomic_write_text`, :func:`atomic_torch_save`: write to a
  temporary file in the destination's folder, flush it to disk, then ``os.replace`` it over the
  destination. A reader (or a run killed mid-write) sees the old file or the new one, never a
  truncated one.
* :class:`GracefulStop`: a context manager that turns SIGINT and SIGTERM into a request
  (``stop.requested``) that the work loop checks at points where its state is consistent; there it
  saves and raises :class:`StopRequested`. A second signal stops at once (``KeyboardInterrupt``).
* :func:`system_info`: the Python and package versions, the CPU and torch's CPU kernel set a run's
  numbers depend on. The same seed gives the same run bit for bit only under the same ones (a
  release of numpy, numba/LLVM or torch, or torch's AVX512 kernels in place of its AVX2 ones, may
  change a float's last bit), so the trainer stores them in each checkpoint and run folder, and
  :func:`system_info_differences` says what changed when a run is resumed.

Example::

    with GracefulStop() as stop:
        for item in work:
            do(item)
            if stop.requested:
                atomic_torch_save(state(), "checkpoint.pt")
                stop.raise_stop("checkpoint.pt written")
"""

from __future__ import annotations

import functools
import os
import platform
import signal
import tempfile
import threading
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping

#: Signals :class:`GracefulStop` handles.
STOP_SIGNALS: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)


def exit_code_for(signum: int) -> int:
    """The shell's exit status of a process stopped by ``signum`` (128 + signal: 130 for SIGINT, 143 for SIGTERM)."""
    return 128 + int(signum)


def _atomic_write(path: str | Path, write: Callable[[Any], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file private (0600); a checkpoint keeps the mode of the file it replaces
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, ``os.replace``)."""
    return _atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj, path)``, atomically: an interrupted save leaves the previous file intact."""
    import torch

    return _atomic_write(path, lambda fh: torch.save(obj, fh))


class StopRequested(KeyboardInterrupt):
    """A run stopped on a signal after saving its state (a ``KeyboardInterrupt``, so code that
    does not catch it unwinds as on Ctrl-C).

    :param signum: the signal that asked for the stop.
    :param message: one line for the user (what was saved, how to continue).
    """

    def __init__(self, signum: int, message: str = "") -> None:
        super().__init__(message or f"stopped by {signal.Signals(signum).name}")
        self.signum = int(signum)
        self.message = message or f"stopped by {signal.Signals(signum).name}"

    @property
    def exit_code(self) -> int:
        """130 for SIGINT, 143 for SIGTERM."""
        return exit_code_for(self.signum)


class GracefulStop:
    """Handle SIGINT and SIGTERM as a stop request while the ``with`` block runs.

    The first signal sets :attr:`requested` (and :attr:`signum`); the loop finishes its current
    unit of work, saves, and calls :meth:`raise_stop`. A second signal raises ``KeyboardInterrupt``
    at once (work since the last save is lost). The previous handlers are restored on exit.
    Outside the main thread (where Python cannot install handlers) it does nothing, and
    :attr:`requested` stays False.

    :param on_request: called with the signal number on the first signal (e.g. to print
        "stopping after this update").
    """

    def __init__(self, on_request: Callable[[int], None] | None = None) -> None:
        self.on_request = on_request
        self.requested = False
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopping at once")
        self.requested = True
        self.signum = signum
        if self.on_request is not None:
            self.on_request(signum)

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    def raise_stop(self, message: str = "") -> None:
        """Raise :class:`StopRequested` for the signal received."""
        raise StopRequested(self.signum if self.signum is not None else signal.SIGINT, message)


#: Packages whose versions can change a run's numbers (recorded by :func:`system_info`).
RUN_PACKAGES: tuple[str, ...] = ("swarmgym", "torch", "numpy", "numba", "llvmlite", "gymnasium")


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _torch_cpu_capability() -> str:
    """The set of CPU kernels torch dispatches to (``"AVX2"``, ``"AVX512"``, ...): the same torch
    rounds differently under each; ``ATEN_CPU_CAPABILITY=avx2`` chooses AVX2 on an AVX512 CPU."""
    try:
        import torch

        return str(torch.backends.cpu.get_cpu_capability())
    except (ImportError, AttributeError):
        return "unknown"


def system_info() -> dict[str, str]:
    """What this process computes with: Python, each of :data:`RUN_PACKAGES` (``"absent"`` when not
    installed), the platform, the CPU model and torch's CPU kernel set (math libraries pick their
    code paths by CPU, and their floats differ in the last bits between paths). Looked up once per
    process (it cannot change while the process runs); each call returns a fresh dict."""
    return dict(_system_info_of_this_process())


@functools.cache
def _system_info_of_this_process() -> dict[str, str]:
    info = {"python": platform.python_version()}
    for name in RUN_PACKAGES:
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = "absent"
    info["platform"] = platform.platform()
    info["cpu"] = _cpu_model()
    info["torch_cpu_capability"] = _torch_cpu_capability()
    return info


def system_info_differences(recorded: Mapping[str, str], current: Mapping[str, str] | None = None) -> list[str]:
    """``"numpy 2.4.6 (was 2.3.1)"`` for each entry of ``recorded`` that differs in ``current``
    (default: :func:`system_info` now), in ``recorded``'s order; empty when they agree."""
    now = system_info() if current is None else current
    return [f"{key} {now.get(key, 'absent')} (was {value})" for key, value in recorded.items() if now.get(key, "absent") != value]


__all__ = [
    "STOP_SIGNALS",
    "RUN_PACKAGES",
    "GracefulStop",
    "StopRequested",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "exit_code_for",
    "system_info",
    "system_info_differences",
]
