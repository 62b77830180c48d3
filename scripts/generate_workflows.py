"""Generate the task-graph pool of ``swarmgym/Workflows-v0`` from WfCommons recipes.

Each instance is a synthetic workflow built by WfCommons' WfChef recipe of a real
scientific workflow (Montage, Epigenomics, Seismology, ...), with fixed seeds. What is
stored per instance is the uncoarsened DAG: task types (the recipe's task categories),
runtimes in seconds, and parents, tasks in topological order. The family
(:mod:`swarmgym.workflows`) coarsens and scales these graphs when it is constructed.

Run (needs ``pip install "swarmgym[workflows-data]"``, i.e. wfcommons 1.6)::

    python scripts/generate_workflows.py --out swarmgym/data/workflows.json.gz

``--check PATH`` regenerates the pool in memory and exits 1 unless it equals the file.

WfChef draws with Python's ``random`` and numpy's global generator (seeded here per
instance), names duplicated nodes with ``uuid4`` (replaced here by a seeded source)
and iterates over sets of node names (so the script re-runs itself with
``PYTHONHASHSEED=0``).
"""

from __future__ import annotations

import argparse
import gzip
import heapq
import json
import logging
import os
import random
import sys
import uuid
import warnings

#: Recipes of the pool (WfCommons class name prefix -> stored recipe name). Rnaseq is left
#: out: its WfCommons 1.6 recipe builds graphs without any dependency.
RECIPES = ("Blast", "Bwa", "Cycles", "Epigenomics", "Genome", "Montage", "Seismology", "Soykb", "Srasearch")
#: Upper bounds on the number of tasks (WfChef's num_tasks); sizes below a recipe's smallest base graph are skipped.
SIZES = (60, 120, 180, 250)
#: Seeds per (recipe, size).
SEEDS = (0, 1, 2)
WFCOMMONS_VERSION = "1.6"


def build(recipe: str, num_tasks: int, seed: int) -> dict | None:
    """One workflow as plain data, or None when the recipe cannot make one that small."""
    import numpy as np
    import wfcommons.wfchef.duplicate as duplicate
    import wfcommons.wfchef.recipes as recipes
    from wfcommons import WorkflowGenerator

    names = random.Random(f"uuid-{recipe}-{num_tasks}-{seed}")
    duplicate.uuid4 = lambda: uuid.UUID(int=names.getrandbits(128), version=4)
    random.seed(seed)
    np.random.seed(seed)
    cls = getattr(recipes, f"{recipe}Recipe")
    try:
        workflow = WorkflowGenerator(cls.from_num_tasks(num_tasks)).build_workflow()
    except ValueError:  # "Cannot create synthetic graph with N nodes from base graph with M nodes"
        return None
    ids = list(workflow.nodes)
    index = {task_id: k for k, task_id in enumerate(ids)}
    parents: list[list[int]] = [[] for _ in ids]
    for src, dst in workflow.edges:
        parents[index[dst]].append(index[src])
    # topological order, smallest WfCommons index first
    children: list[list[int]] = [[] for _ in ids]
    indegree = [len(p) for p in parents]
    for i, ps in enumerate(parents):
        for p in ps:
            children[p].append(i)
    heap = [i for i in range(len(ids)) if indegree[i] == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        i = heapq.heappop(heap)
        order.append(i)
        for c in children[i]:
            indegree[c] -= 1
            if indegree[c] == 0:
                heapq.heappush(heap, c)
    assert len(order) == len(ids), f"{recipe}: the workflow has a cycle"
    new = {old: k for k, old in enumerate(order)}
    tasks = [workflow.nodes[ids[i]]["task"] for i in order]
    types = sorted({t.name for t in tasks})
    return {
        "recipe": recipe,
        "num_tasks": num_tasks,
        "seed": seed,
        "types": types,
        "type": [types.index(t.name) for t in tasks],
        "runtime": [round(float(t.runtime), 3) for t in tasks],
        "parents": [sorted(new[p] for p in parents[i]) for i in order],
    }


def generate() -> dict:
    import wfcommons

    if getattr(wfcommons, "__version__", WFCOMMONS_VERSION) != WFCOMMONS_VERSION:
        raise SystemExit(f"this pool is made with wfcommons {WFCOMMONS_VERSION}; found {wfcommons.__version__}")
    instances = []
    for recipe in RECIPES:
        for size in SIZES:
            for seed in SEEDS:
                inst = build(recipe, size, seed)
                if inst is not None:
                    instances.append(inst)
    return {
        "source": f"wfcommons {WFCOMMONS_VERSION} WfChef recipes",
        "command": "python scripts/generate_workflows.py --out swarmgym/data/workflows.json.gz",
        "instances": instances,
    }


def encode(pool: dict) -> bytes:
    text = json.dumps(pool, sort_keys=True, separators=(",", ":")).encode()
    return gzip.compress(text, compresslevel=9, mtime=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", help="write the pool (gzip-compressed JSON) here")
    group.add_argument("--check", metavar="PATH", help="exit 1 unless PATH holds exactly the pool this script makes")
    args = parser.parse_args()
    if os.environ.get("PYTHONHASHSEED") != "0":  # set iteration order must not vary between runs
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    warnings.filterwarnings("ignore")
    logging.disable(logging.CRITICAL)
    pool = generate()
    data = encode(pool)
    if args.check:
        with open(args.check, "rb") as f:
            shipped = json.loads(gzip.decompress(f.read()))
        same = shipped == json.loads(gzip.decompress(data))
        print(f"{args.check}: {'matches' if same else 'DIFFERS FROM'} the generated pool ({len(pool['instances'])} instances)")
        return 0 if same else 1
    with open(args.out, "wb") as f:
        f.write(data)
    sizes = [len(i["type"]) for i in pool["instances"]]
    print(f"wrote {args.out}: {len(sizes)} instances, {min(sizes)}..{max(sizes)} tasks, {len(data):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
