"""The ``swarmgym`` command line: ``swarmgym <command> [options]``.

Commands are implemented in their own modules and imported lazily, so that
``swarmgym --help`` stays fast:

* ``evaluate`` -- evaluate orchestrators on env ids over seeds (:mod:`swarmgym.evaluation`)
* ``train``    -- train the MoE orchestrator with PARL (:mod:`swarmgym.moe.train`)
* ``study``    -- the PARL study over conditions and seeds (:mod:`swarmgym.moe.study`)
* ``replay``   -- one episode's event trace and Gantt chart (:mod:`swarmgym.replay`)
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "evaluate": ("swarmgym.evaluation", "evaluate orchestrators on env ids over seeds; writes Markdown and CSV tables"),
    "train": ("swarmgym.moe.train", "train the MoE orchestrator with annealed PARL, then evaluate it beside the hand-coded ones"),
    "study": ("swarmgym.moe.study", "run the PARL study (r_perf only, annealed and constant PARL, dense vs MoE) over seeds"),
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
