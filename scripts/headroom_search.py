"""Headroom of candidate family settings: ``oracle_rule`` minus the best hand-coded row, paired over the
same seeds, for the mechanics families played with overridden parameters (an analysis tool only: it
registers nothing and changes no registered id; the oracle reads the hidden scale, which no policy
can see).

A candidates file (TOML) lists ``[[candidate]]`` tables, each with a ``name``, the registered
``id`` it starts from, a ``reason`` in the problem's words, and optional ``generator_kwargs`` and
``config`` tables deep-merged onto the id's registered kwargs (a table merges key by key, a list of
tables such as ``tiers`` element by element, anything else replaces)::

    [[candidate]]
    name = "dr-wide"
    id = "DeepResearch-v0"
    reason = "some topics defeat a cheap model entirely"
    config = { hidden_reliability = [0.05, 6.0] }

Every ``verifying_scheduler`` row and the oracle are told the candidate's own public table
(``public=`` its merged config), as the registered ids tell theirs, so a changed table does not
handicap the hand-coded rules. The hand-coded rows are ``--rows`` (default: ``mechanics_headroom``'s
table and fixed rules plus the ``tier=fast|careful`` variants); the best of them is the one the
oracles are compared with. The told rules are ``--oracles``: ``oracle_rule`` and the same rule with
verifying_scheduler's arguments (``oracle_rule:verify=never``); ``oracle_pick`` is, per third of the
fast tier's hidden scale, the best of every row on the other half of the seeds (cross-fitted).

Usage (about 40 s per candidate at -n 60 on one core, two to three minutes at -n 200)::

    python scripts/headroom_search.py scripts/headroom_candidates.toml -n 60 [--only NAME ...]
    python scripts/headroom_search.py scripts/headroom_candidates.toml -n 200 --seed0 1000 --only NAME  # confirm
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tomllib
from typing import Any

import gymnasium as gym
import numpy as np

import swarmgym  # noqa: F401  (registers the ids)
from swarmgym.config import SwarmConfig
from swarmgym.evaluation import resolve_id
from swarmgym.orchestrators import VerifyingScheduler, _parse_value, load_orchestrator

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from mechanics_headroom import DEFAULT_FIXED, DEFAULT_SPECS, ScaleOracle, mean_ci, oracle_pick, play  # noqa: E402

DEFAULT_ROWS = tuple(dict.fromkeys([*DEFAULT_SPECS, *DEFAULT_FIXED, "verifying_scheduler:tier=fast", "verifying_scheduler:tier=careful"]))
ORACLE = "oracle_rule"
DEFAULT_ORACLES = (ORACLE, f"{ORACLE}:verify=never", f"{ORACLE}:verify=always", f"{ORACLE}:tier=fast", f"{ORACLE}:tier=careful")


def deep_merge(base: Any, over: Any) -> Any:
    """``over`` onto ``base``: dicts key by key, equal-length lists of dicts element by element."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(over, list) and len(base) == len(over) and all(isinstance(x, dict) for x in over):
        return [deep_merge(b, o) for b, o in zip(base, over)]
    return copy.deepcopy(over)


def candidate_kwargs(candidate: dict) -> tuple[str, dict]:
    """The registered id and its env kwargs with the candidate's overrides merged in."""
    env_id = resolve_id(candidate["id"])
    registered = copy.deepcopy(gym.spec(env_id).kwargs)
    kwargs = {}
    for key in ("generator_kwargs", "config"):
        if key in candidate:
            kwargs[key] = deep_merge(registered[key], candidate[key])
    return env_id, kwargs


def policy_for(spec: str, public: SwarmConfig):
    """The orchestrator of ``spec``, a verifying_scheduler (or ``oracle_rule[:ARGS]``, the same rule
    told the hidden scale) told the candidate's public table."""
    head, _, rest = spec.partition(":")
    args = {k: _parse_value(v) for k, v in (item.split("=", 1) for item in filter(None, rest.split(",")))}
    if head == ORACLE:
        policy = ScaleOracle(**args, public=public)
    else:
        policy = load_orchestrator(spec)
        if not isinstance(policy, VerifyingScheduler):
            return policy
        policy = type(policy)(**args, public=public)
    policy.name = spec
    return policy


def run_candidate(candidate: dict, seeds: range, rows: list[str], oracles: list[str], save: str | None = None) -> dict:
    env_id, kwargs = candidate_kwargs(candidate)
    config = gym.make(env_id, disable_env_checker=True, **kwargs).unwrapped.config
    public = config
    print(f"\n## {candidate['name']}: {env_id} + {json.dumps({k: candidate[k] for k in ('generator_kwargs', 'config') if k in candidate})}")
    print(f"reason: {candidate.get('reason', '')}\n")
    print("| orchestrator | score (95% CI) | cost (m$) | verified | caught | targets wrong | missing | budget hit |")
    print("|---|---|---|---|---|---|---|---|")
    scores: dict[str, np.ndarray] = {}
    scales = None
    for spec in [*rows, *oracles]:
        out, scales = play(policy_for(spec, public), env_id, seeds, kwargs)
        scores[spec] = out["score"]
        print(
            f"| {spec} | {mean_ci(out['score'])} | {1e3 * out['cost_usd'].mean():.2f} | {out['n_verified'].mean():.2f} | "
            f"{out['n_caught'].mean():.2f} | {out['targets_wrong'].mean():.2f} | {out['targets_missing'].mean():.2f} | "
            f"{out['budget_exhausted'].mean():.2f} |",
            flush=True,
        )
    if save:
        np.savez(f"{save}/{candidate['name']}-s{seeds.start}-n{len(seeds)}.npz", scales=scales, **scores)
    told = {k: scores.pop(k) for k in oracles}
    best = max(scores, key=lambda k: scores[k].mean())
    best_told = max(told, key=lambda k: told[k].mean())
    lo, hi = config.hidden_reliability or (1.0, 1.0)
    edges = np.linspace(lo, hi, 4)
    third = np.searchsorted(edges[1:-1], scales[:, 0])
    result = {"name": candidate["name"], "best": best, "best_score": mean_ci(scores[best])}
    # the best of every row (hand-coded and told) per third of the fast tier's scale, cross-fitted
    told["oracle_pick"] = oracle_pick({**scores, **told}, scales[:, :1], lo, hi, 3)
    for key, name in (("oracle", ORACLE), ("best_oracle", best_told), ("pick", "oracle_pick")):
        if name not in told:
            continue
        diff = told[name] - scores[best]
        by_third = " / ".join(f"{diff[third == k].mean():+.3f}" for k in range(3))
        print(f"\n{name} - {best}, paired: {mean_ci(diff)} (by thirds of the fast tier's scale: {by_third})")
        result[key] = (name, mean_ci(told[name]), mean_ci(diff))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("candidates", help="TOML file of [[candidate]] tables")
    ap.add_argument("-n", type=int, default=60, help="episodes per orchestrator")
    ap.add_argument("--seed0", type=int, default=0, help="the first seed (confirm a screened candidate on fresh seeds)")
    ap.add_argument("--only", nargs="+", help="run only these candidate names")
    ap.add_argument("--rows", nargs="+", default=list(DEFAULT_ROWS), help="hand-coded orchestrator specs")
    ap.add_argument("--oracles", nargs="+", default=list(DEFAULT_ORACLES), help="told rules: oracle_rule[:verifying_scheduler's args]")
    ap.add_argument("--save", help="a folder for each candidate's per-episode scores and hidden scales (.npz)")
    args = ap.parse_args()
    with open(args.candidates, "rb") as f:
        candidates = tomllib.load(f)["candidate"]
    if args.only:
        unknown = set(args.only) - {c["name"] for c in candidates}
        if unknown:
            raise SystemExit(f"unknown candidate(s) {sorted(unknown)}")
        candidates = [c for c in candidates if c["name"] in args.only]
    seeds = range(args.seed0, args.seed0 + args.n)
    summary = [run_candidate(c, seeds, args.rows, args.oracles, args.save) for c in candidates]
    print(f"\n## Summary (-n {args.n}, seeds {seeds.start}..{seeds.stop - 1})\n")
    print(
        "| candidate | best hand-coded | its score | oracle_rule | oracle_rule - best, paired | best told rule | its score | "
        "it - best, paired | oracle_pick | it - best, paired |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s in summary:
        o = s.get("oracle", ("", "", ""))
        b = s["best_oracle"]
        p = s["pick"]
        print(f"| {s['name']} | {s['best']} | {s['best_score']} | {o[1]} | {o[2]} | {b[0]} | {b[1]} | {b[2]} | {p[1]} | {p[2]} |")


if __name__ == "__main__":
    main()
