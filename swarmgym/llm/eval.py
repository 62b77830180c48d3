"""``swarmgym llm-eval``: a language model as the orchestrator, in the same table as every other one.

Plays ``-n`` episodes per id (seeds ``seed_offset .. seed_offset + n - 1``, the same instances
``swarmgym evaluate`` uses) against an OpenAI-compatible chat-completions endpoint, several
episodes in flight at once (``--concurrency`` threads), and writes:

* ``OUT/episodes/<id>/seed-<k>.json`` -- one file per finished episode, written atomically
  (a temporary file renamed into place): the env's metrics (simulated tokens and cost
  included), the model's real prompt and completion tokens, requests, seconds, failures by
  kind and tool-call counts (``--transcripts`` adds the whole chat). A rerun of the same
  command skips every episode that has its file: an interrupted run resumes where it stopped.
* ``OUT/table.md``, ``OUT/table.csv`` -- :func:`swarmgym.evaluation.to_markdown` /
  :func:`~swarmgym.evaluation.to_csv` of the model's row beside the ``--compare`` orchestrators
  (played on the same seeds);
* ``OUT/usage.md``, ``OUT/usage.csv`` -- per id: the model's real tokens beside the simulated
  token model, requests, failures and invalid calls;
* ``OUT/run.json`` -- the settings; a rerun into the same folder with settings that change the
  episodes (model, temperature, max tokens, history, prompt) stops with one line.

Episodes whose turn got no reply (retries used up, a non-retryable 4xx) are listed in
``OUT/errors.jsonl`` and are not cached; a rerun tries them again. A wrong key, no access or
an unknown model (401/403/404) stops the run. Ctrl-C stops it between turns; finished episodes
stay cached.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import queue
import re
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from swarmgym.evaluation import EvalResult, evaluate, resolve_id, suite_ids, table_rows, to_csv, to_markdown
from swarmgym.registration import uses_mechanics
from swarmgym.metrics import MetricsRecorder
from swarmgym.orchestrators import load_orchestrator
from swarmgym.moe.checkpointing import atomic_write_text as write_atomic  # readers see the old file or the whole new one

#: Compared orchestrators when ``--compare`` is not given.
DEFAULT_COMPARE = "critical_path,sequential_crew"
#: Settings that change the episodes a model plays: a cache made with other values is not reused.
EPISODE_SETTINGS = ("model", "temperature", "max_tokens", "history", "extra_body", "prompt_sha256")


def slug(text: str) -> str:
    """A file-name-safe form of an id or a model name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"


def episode_path(out: Path, env_id: str, seed: int) -> Path:
    return out / "episodes" / slug(env_id) / f"seed-{seed}.json"


def load_episode(out: Path, env_id: str, seed: int) -> dict[str, Any] | None:
    """The cached record of a finished episode, or None (a missing or unreadable file)."""
    path = episode_path(out, env_id, seed)
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if record.get("status") == "finished" else None


def prompt_fingerprint() -> str:
    """SHA-256 of the system prompt and the tool schemas (what the model is told)."""
    from swarmgym.layout import ActionLayout
    from swarmgym.llm.render import SYSTEM_PROMPT
    from swarmgym.llm.tools import tool_schemas

    text = SYSTEM_PROMPT + json.dumps(tool_schemas(ActionLayout(1)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def usage_rows(
    records: dict[str, list[dict[str, Any]]], wanted: dict[str, int], prices: tuple[float, float] | None = None
) -> list[dict[str, Any]]:
    """Per id: the model's real tokens beside the simulated ones, requests, failures, invalid calls;
    with ``prices`` (US dollars per million prompt and completion tokens) the real cost too."""
    rows = []
    for env_id, recs in records.items():
        llm = [r["llm"] for r in recs]
        failures: dict[str, int] = {}
        for x in llm:
            for k, v in x.get("failures", {}).items():
                failures[k] = failures.get(k, 0) + v
        mean = lambda key, src=llm: float(np.mean([x.get(key, 0) for x in src])) if src else float("nan")  # noqa: E731
        rows.append(
            {
                "env_id": env_id,
                "episodes": len(recs),
                "wanted": wanted.get(env_id, len(recs)),
                "requests": mean("requests"),
                "messages": mean("messages"),
                "prompt_tokens": mean("prompt_tokens"),
                "completion_tokens": mean("completion_tokens"),
                "simulated_tokens": float(np.mean([r["metrics"]["tokens"] for r in recs])) if recs else float("nan"),
                "simulated_cost_usd": float(np.mean([r["metrics"]["cost_usd"] for r in recs])) if recs else float("nan"),
                "real_cost_usd": (mean("prompt_tokens") * prices[0] + mean("completion_tokens") * prices[1]) / 1e6
                if prices
                else float("nan"),
                "invalid_calls": mean("invalid_calls"),
                "ignored_calls": mean("ignored_calls"),
                "model_seconds": mean("seconds"),
                "failures": ";".join(f"{k}={v}" for k, v in sorted(failures.items())) or "-",
                "usage_reported": all(x.get("usage_reported", False) for x in llm),
            }
        )
    return rows


USAGE_COLUMNS = (
    ("env_id", "env"),
    ("episodes", "episodes"),
    ("wanted", "of"),
    ("messages", "turn messages"),
    ("requests", "requests"),
    ("prompt_tokens", "prompt tokens"),
    ("completion_tokens", "completion tokens"),
    ("simulated_tokens", "simulated tokens"),
    ("simulated_cost_usd", "simulated cost ($)"),
    ("real_cost_usd", "real cost ($)"),
    ("invalid_calls", "invalid calls"),
    ("ignored_calls", "ignored calls"),
    ("model_seconds", "model seconds"),
    ("failures", "endpoint failures (total)"),
)


def usage_markdown(rows: list[dict[str, Any]], model: str) -> str:
    out = io.StringIO()
    out.write(f"Real usage of {model} per episode (means), beside the simulated token model; failures are totals.\n\n")
    out.write("| " + " | ".join(h for _, h in USAGE_COLUMNS) + " |\n")
    out.write("|" + "|".join(["---"] + ["---:"] * (len(USAGE_COLUMNS) - 2) + ["---"]) + "|\n")
    for r in rows:
        cells = []
        for key, _ in USAGE_COLUMNS:
            v = r[key]
            if key == "env_id":
                v = v.removeprefix("swarmgym/")
            elif key in ("simulated_cost_usd", "real_cost_usd"):
                v = "-" if v != v else f"{v:.5f}"
            elif isinstance(v, float):
                v = f"{v:.1f}"
            cells.append(str(v))
        out.write("| " + " | ".join(cells) + " |\n")
    if rows and not all(r["usage_reported"] for r in rows):
        out.write("\nThe endpoint did not report token usage for some replies (counted as 0).\n")
    return out.getvalue()


def usage_csv(rows: list[dict[str, Any]]) -> str:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    keys = [k for k, _ in USAGE_COLUMNS] + ["usage_reported"]
    w.writerow(keys)
    for r in rows:
        w.writerow([f"{r[k]:.6g}" if isinstance(r[k], float) else r[k] for k in keys])
    return buf.getvalue()


class _Run:
    """The episodes of one invocation, played by worker threads."""

    def __init__(self, endpoint, out: Path, jobs: list[tuple[str, int]], args) -> None:
        self.endpoint, self.out, self.args = endpoint, out, args
        self.jobs: queue.Queue = queue.Queue()
        for job in jobs:
            self.jobs.put(job)
        self.results: queue.Queue = queue.Queue()
        self.stop = endpoint.stop
        self.fatal: str | None = None

    def worker(self) -> None:
        from swarmgym.llm.chat import EndpointError, FatalEndpointError, play_episode, to_jsonable

        while not self.stop.is_set():
            try:
                env_id, seed = self.jobs.get_nowait()
            except queue.Empty:
                return
            try:
                record = play_episode(self.endpoint, env_id, seed, history=self.args.history, transcript=self.args.transcripts)
            except FatalEndpointError as exc:
                self.fatal = f"{exc.kind}: {exc}"
                self.stop.set()
                self.results.put(("fatal", env_id, seed, str(exc)))
                return
            except EndpointError as exc:
                self.results.put(("error", env_id, seed, {"kind": exc.kind, "message": str(exc), "llm": getattr(exc, "partial", {})}))
                continue
            except Exception as exc:  # noqa: BLE001 - one episode's bug must not lose the run; it is reported
                self.results.put(("error", env_id, seed, {"kind": type(exc).__name__, "message": str(exc)}))
                continue
            transcript = record.pop("transcript", None)
            record["written_at"] = time.time()
            if transcript is not None:
                write_atomic(episode_path(self.out, env_id, seed).with_suffix(".transcript.json"), json.dumps(transcript, indent=1))
            write_atomic(episode_path(self.out, env_id, seed), json.dumps(to_jsonable(record), indent=1))
            self.results.put(("done", env_id, seed, record))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="swarmgym llm-eval",
        description="Evaluate a language model served by an OpenAI-compatible chat-completions endpoint as the orchestrator; "
        "cached per episode, resumable, in the same table as the hand-coded orchestrators.",
    )
    p.add_argument("--base-url", required=True, help="the endpoint's base URL, e.g. http://localhost:8000/v1")
    p.add_argument("--model", required=True, help="model name as the endpoint knows it")
    p.add_argument(
        "--api-key-env",
        default=None,
        metavar="VAR",
        help="environment variable holding the API key (default OPENAI_API_KEY if set, else none)",
    )
    p.add_argument(
        "--ids",
        nargs="+",
        default=["suite"],
        metavar="ID",
        help="env ids; 'suite' = every Dict id of the suite without the mechanics (default)",
    )
    p.add_argument("-n", "--episodes", type=int, default=20, help="episodes (seeds) per id (default 20)")
    p.add_argument("--seed-offset", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--concurrency", type=int, default=8, help="episodes in flight at once, 1..256 (default 8)")
    p.add_argument(
        "--temperature", type=float, default=0.0, help="sampling temperature (default 0; a negative value: the server's default)"
    )
    p.add_argument("--max-tokens", type=int, default=None, help="completion tokens per turn (default: the server's)")
    p.add_argument("--history", type=int, default=2, help="earlier exchanges sent with each turn (default 2; -1: all)")
    p.add_argument("--extra-body", default=None, metavar="JSON", help="extra request fields as JSON, e.g. '{\"top_p\": 0.9}'")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request before it counts as timed out (default 120)")
    p.add_argument("--max-retries", type=int, default=6, help="retries per turn on 429/5xx/timeouts/dropped connections (default 6)")
    p.add_argument("--backoff", type=float, default=1.0, help="first retry delay in seconds, doubled per retry (default 1)")
    p.add_argument(
        "--price",
        nargs=2,
        type=float,
        default=None,
        metavar=("INPUT", "OUTPUT"),
        help="the model's real price in US dollars per million prompt and completion tokens (adds a real-cost column)",
    )
    p.add_argument(
        "--compare",
        default=DEFAULT_COMPARE,
        help=f"orchestrators in the same table, comma-separated, or 'none' (default {DEFAULT_COMPARE})",
    )
    p.add_argument("--name", default=None, help="the model's row name (default llm:MODEL)")
    p.add_argument("--out", default=None, help="run folder: cache and tables (default runs/llm-eval/MODEL)")
    p.add_argument("--title", default=None, help="title line of table.md")
    p.add_argument("--transcripts", action="store_true", help="also save each episode's whole chat beside its record")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def _fail(message: str) -> int:
    print(f"swarmgym llm-eval: {message}", file=sys.stderr)
    return 2


def cli_main(argv: list[str]) -> int:
    """Entry point of ``swarmgym llm-eval``."""
    args = _parser().parse_args(argv)
    # ------------------------------------------------------------ check everything before any work
    if args.episodes < 1:
        return _fail(f"--episodes must be an integer >= 1, got {args.episodes}")
    if not 1 <= args.concurrency <= 256:
        return _fail(f"--concurrency must be in [1, 256], got {args.concurrency}")
    if args.history < -1:
        return _fail(f"--history must be -1 (all) or >= 0, got {args.history}")
    if args.price is not None and min(args.price) < 0:
        return _fail(f"--price must be two numbers >= 0 (dollars per million prompt and completion tokens), got {args.price}")
    if args.seed_offset < 0:
        return _fail(f"--seed-offset must be >= 0, got {args.seed_offset}")
    try:
        extra_body = json.loads(args.extra_body) if args.extra_body else {}
        if not isinstance(extra_body, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        return _fail(f"--extra-body must be a JSON object, got {args.extra_body!r} ({exc})")
    if args.api_key_env is not None:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            return _fail(f"--api-key-env {args.api_key_env}: that environment variable is not set")
    else:
        api_key = os.environ.get("OPENAI_API_KEY") or "EMPTY"
    from swarmgym.llm.chat import ChatEndpoint, ChatSettings

    try:
        settings = ChatSettings(
            base_url=args.base_url,
            model=args.model,
            api_key=api_key,
            temperature=None if args.temperature < 0 else args.temperature,
            max_tokens=args.max_tokens,
            timeout=args.timeout,
            max_retries=args.max_retries,
            backoff=args.backoff,
            extra_body=extra_body,
        )
        ids: list[str] = []
        for name in args.ids:
            ids += [i for i in suite_ids() if not uses_mechanics(i)] if name == "suite" else [resolve_id(name)]
        compare = [] if args.compare.strip().lower() == "none" else [c.strip() for c in args.compare.split(",") if c.strip()]
        policies = [load_orchestrator(c) for c in compare]
        endpoint = ChatEndpoint(settings)
    except (ValueError, TypeError, ImportError, OSError) as exc:
        return _fail(str(exc))
    history = None if args.history == -1 else args.history
    args.history = history
    out = Path(args.out) if args.out else Path("runs") / "llm-eval" / slug(args.model)
    run_info = {
        "model": args.model,
        "base_url": args.base_url,
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
        "history": history,
        "extra_body": extra_body,
        "prompt_sha256": prompt_fingerprint(),
    }
    run_file = out / "run.json"
    if run_file.exists():
        try:
            before = json.loads(run_file.read_text())
        except json.JSONDecodeError:
            before = {}
        changed = [k for k in EPISODE_SETTINGS if k in before and before[k] != run_info[k]]
        if changed:
            diffs = ", ".join(f"{k} {before[k]!r} -> {run_info[k]!r}" for k in changed)
            return _fail(f"{out} holds episodes played with other settings ({diffs}); pass another --out")
    write_atomic(run_file, json.dumps(run_info, indent=1))
    row_name = args.name or f"llm:{args.model}"
    seeds = list(range(args.seed_offset, args.seed_offset + args.episodes))

    def say(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    # ------------------------------------------------------------ play what is not cached
    cached = {(i, s) for i in ids for s in seeds if load_episode(out, i, s) is not None}
    todo = [(i, s) for i in ids for s in seeds if (i, s) not in cached]
    say(f"{len(ids) * len(seeds)} episodes: {len(cached)} cached in {out}, {len(todo)} to play with {args.model} at {args.base_url}")
    run = _Run(endpoint, out, todo, args)
    threads = [threading.Thread(target=run.worker, daemon=True, name=f"llm-eval-{k}") for k in range(min(args.concurrency, len(todo)))]
    for t in threads:
        t.start()
    errors: list[dict[str, Any]] = []
    finished = interrupted = 0
    start = time.perf_counter()
    try:
        while any(t.is_alive() for t in threads) or not run.results.empty():
            try:
                kind, env_id, seed, payload = run.results.get(timeout=0.2)
            except queue.Empty:
                continue
            if kind == "done":
                finished += 1
                m = payload["metrics"]
                say(
                    f"  [{finished}/{len(todo)}] {env_id.removeprefix('swarmgym/')} seed {seed}: score {m['score']:.3f}, "
                    f"critical steps {m['critical_steps']}, {payload['llm']['messages']} turns, "
                    f"{payload['llm']['prompt_tokens']}+{payload['llm']['completion_tokens']} real tokens"
                )
            elif kind == "error":
                errors.append({"env_id": env_id, "seed": seed, **payload})
                say(f"  {env_id.removeprefix('swarmgym/')} seed {seed}: not finished ({payload['kind']}: {payload['message']})")
            else:
                say(f"  stopping: {payload}")
    except KeyboardInterrupt:
        interrupted = 1
        endpoint.stop.set()
        say(f"interrupted: {finished} episodes finished in this run are cached; rerun the same command to resume")
    if errors:
        with open(out / "errors.jsonl", "a") as f:
            for e in errors:
                f.write(json.dumps({"time": time.time(), **e}, default=str) + "\n")
    if run.fatal:
        return _fail(f"the endpoint refused the run ({run.fatal}); check --base-url, --model and the API key")

    # ------------------------------------------------------------ tables from every cached episode
    records: dict[str, list[dict[str, Any]]] = {}
    results: list[EvalResult] = []
    missing = 0
    for env_id in ids:
        recs = [r for r in (load_episode(out, env_id, s) for s in seeds) if r is not None]
        missing += len(seeds) - len(recs)
        if not recs:
            continue
        records[env_id] = recs
        rec = MetricsRecorder()
        for r in recs:
            rec.add(r["metrics"])
        results.append(EvalResult(env_id, row_name, rec, sum(r["llm"].get("wall_seconds", 0.0) for r in recs)))
    if not results:
        say("no finished episodes yet; nothing to tabulate")
        return 1 if (errors or interrupted) else 0
    if policies:
        compared = evaluate(policies, list(records), len(seeds), seed_offset=args.seed_offset)
        by_id: dict[str, list[EvalResult]] = {}
        for r in results + compared:
            by_id.setdefault(r.env_id, []).append(r)
        results = [r for env_id in records for r in by_id[env_id]]
    rows = table_rows(results)
    command = "swarmgym llm-eval " + shlex.join(argv)
    markdown = to_markdown(rows, title=args.title, command=command)
    usage = usage_rows(records, {i: len(seeds) for i in ids}, tuple(args.price) if args.price else None)
    print(markdown)
    print(usage_markdown(usage, args.model))
    write_atomic(out / "table.md", markdown)
    write_atomic(out / "table.csv", to_csv(rows))
    write_atomic(out / "usage.md", usage_markdown(usage, args.model))
    write_atomic(out / "usage.csv", usage_csv(usage))
    say(f"wrote {out}/table.md, table.csv, usage.md, usage.csv ({time.perf_counter() - start:.1f} s)")
    if interrupted:
        return 130
    if missing:
        say(f"{missing} episodes not finished (see {out}/errors.jsonl); the tables hold the finished ones; rerun to resume")
        return 1
    return 0


__all__ = ["DEFAULT_COMPARE", "cli_main", "episode_path", "load_episode", "slug", "usage_rows", "write_atomic"]
