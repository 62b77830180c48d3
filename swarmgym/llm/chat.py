"""A chat-completions endpoint as the orchestrator: one request per turn, retried with backoff.

Works with any OpenAI-compatible server (vLLM, SGLang, llama.cpp's server, hosted APIs)
through the ``openai`` package (``pip install 'swarmgym[llm]'``).

Failures, and what happens to the episode:

=====================================  ===============================================================
HTTP 429, 408, 409, 5xx                retried after ``backoff * 2**k`` seconds (jittered, at most
                                       ``backoff_cap``; a 429's ``Retry-After`` is honoured up to the cap)
timeout, dropped connection            retried the same way
a response without a message           retried the same way (``bad_response``)
other 4xx (400, 413, 422, ...)         the episode stops with an error (not cached; a rerun retries it)
401, 403, 404                          the whole run stops (:class:`FatalEndpointError`): key, access or model name
retries used up                        the episode stops with an error (not cached)
model output that is not a valid call  not an endpoint failure: the env answers it with a tool error
=====================================  ===============================================================

Every failure is counted in the episode's record (``failures``: kind -> count).
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Header that names the episode of a request (servers ignore it; the test server logs it).
EPISODE_HEADER = "X-Swarmgym-Episode"


def import_openai():
    """The ``openai`` package, or one line naming the extra that installs it."""
    try:
        import openai
    except ImportError:
        raise ImportError("swarmgym llm-eval needs the openai package: pip install 'swarmgym[llm]'") from None
    return openai


class EndpointError(RuntimeError):
    """The endpoint did not produce a reply for this turn (after retries, or a non-retryable error).

    :param kind: ``http_<status>``, ``timeout``, ``connection``, ``bad_response`` or ``interrupted``.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class FatalEndpointError(EndpointError):
    """An error no episode can get past (wrong key, no access, unknown model): the run stops."""


@dataclass
class ChatSettings:
    """How to call the endpoint.

    :param base_url: the server's OpenAI-compatible base URL (``http://host:8000/v1``).
    :param model: the model name the server expects.
    :param api_key: the key (local servers accept any string).
    :param temperature: sampling temperature (None: the server's default).
    :param max_tokens: completion token limit per turn (None: the server's default).
    :param timeout: seconds before a request counts as timed out, > 0.
    :param max_retries: retries of one turn's request, >= 0.
    :param backoff: first retry delay in seconds, >= 0 (doubles each retry).
    :param backoff_cap: longest retry delay in seconds.
    :param extra_body: extra JSON fields of every request (e.g. ``{"top_p": 0.9}``).
    """

    base_url: str
    model: str
    api_key: str = "EMPTY"
    temperature: float | None = 0.0
    max_tokens: int | None = None
    timeout: float = 120.0
    max_retries: int = 6
    backoff: float = 1.0
    backoff_cap: float = 60.0
    extra_body: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.timeout, (int, float)) or not self.timeout > 0:
            raise ValueError(f"timeout must be a number of seconds > 0, got {self.timeout!r}")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or not 0 <= self.max_retries <= 100:
            raise ValueError(f"max_retries must be an integer in [0, 100], got {self.max_retries!r}")
        if not isinstance(self.backoff, (int, float)) or self.backoff < 0 or self.backoff_cap < 0:
            raise ValueError(f"backoff and backoff_cap must be >= 0 seconds, got {self.backoff!r} and {self.backoff_cap!r}")
        if self.max_tokens is not None and (
            isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1
        ):
            raise ValueError(f"max_tokens must be None or an integer >= 1, got {self.max_tokens!r}")


@dataclass
class Reply:
    """One turn's reply: the assistant message and what it cost."""

    message: dict[str, Any]
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    failures: list[str]
    usage_reported: bool


def _retry_kind(openai, exc: Exception) -> str | None:
    """The failure kind when ``exc`` is worth retrying, else None."""
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        return f"http_{status}" if status in (408, 409, 429) or status >= 500 else None
    if isinstance(exc, (openai.APIResponseValidationError, json.JSONDecodeError, ValueError)):
        return "bad_response"
    return None


class ChatEndpoint:
    """A chat-completions endpoint; thread-safe (one HTTP client shared by all episodes).

    :param settings: the endpoint and how to call it.
    :param stop: set it to make waiting calls give up (``EndpointError("interrupted")``).
    """

    def __init__(self, settings: ChatSettings, stop: threading.Event | None = None) -> None:
        openai = import_openai()
        self.settings = settings
        self.stop = stop if stop is not None else threading.Event()
        self._openai = openai
        # retries are ours (counted per episode), not the client's
        self.client = openai.OpenAI(base_url=settings.base_url, api_key=settings.api_key, timeout=settings.timeout, max_retries=0)
        self._rng = random.Random(0)
        self._rng_lock = threading.Lock()

    def _delay(self, attempt: int, exc: Exception) -> float:
        s = self.settings
        delay = min(s.backoff_cap, s.backoff * (2**attempt))
        with self._rng_lock:
            delay *= 0.5 + 0.5 * self._rng.random()
        response = getattr(exc, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None and hasattr(response, "headers") else None
        if retry_after:
            try:
                delay = max(delay, min(s.backoff_cap, float(retry_after)))
            except ValueError:
                pass
        return delay

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], episode: str = "") -> Reply:
        """The assistant message for ``messages`` (retrying as the module docstring says)."""
        s, openai = self.settings, self._openai
        kwargs: dict[str, Any] = {"model": s.model, "messages": messages, "tools": tools}
        if s.temperature is not None:
            kwargs["temperature"] = s.temperature
        if s.max_tokens is not None:
            kwargs["max_tokens"] = s.max_tokens
        if s.extra_body:
            kwargs["extra_body"] = s.extra_body
        if episode:
            kwargs["extra_headers"] = {EPISODE_HEADER: episode}
        failures: list[str] = []
        start = time.perf_counter()
        for attempt in range(s.max_retries + 1):
            if self.stop.is_set():
                raise EndpointError("interrupted", "the run was interrupted")
            try:
                response = self.client.chat.completions.create(**kwargs)
                message = _assistant_message(response)
            except Exception as exc:  # noqa: BLE001 - sorted into retry / episode error / fatal below
                if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)):
                    raise FatalEndpointError(f"http_{exc.status_code}", f"{s.base_url}: {exc.status_code} {_short(exc)}") from None
                kind = _retry_kind(openai, exc)
                if kind is None:
                    status = getattr(exc, "status_code", None)
                    raise EndpointError(f"http_{status}" if status else type(exc).__name__, f"{_short(exc)}") from None
                failures.append(kind)
                if attempt == s.max_retries:
                    err = EndpointError(kind, f"gave up after {attempt + 1} tries; last: {kind} ({_short(exc)})")
                    err.failures = failures  # type: ignore[attr-defined]
                    raise err from None
                if self.stop.wait(self._delay(attempt, exc)):
                    raise EndpointError("interrupted", "the run was interrupted") from None
                continue
            usage = getattr(response, "usage", None)
            prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
            completion = int(getattr(usage, "completion_tokens", 0) or 0)
            return Reply(message, prompt, completion, time.perf_counter() - start, failures, usage is not None)
        raise AssertionError("unreachable")  # pragma: no cover


def _short(exc: Exception) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= 200 else text[:197] + "..."


def _assistant_message(response: Any) -> dict[str, Any]:
    """The first choice's message as a plain dict (``ValueError`` when the response has none)."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise ValueError(f"the response has no choices: {str(response)[:120]!r}")
    msg = choices[0].message
    out: dict[str, Any] = {"role": "assistant", "content": msg.content}
    calls = []
    for call in msg.tool_calls or []:
        fn = getattr(call, "function", None)
        calls.append(
            {
                "id": getattr(call, "id", None) or "",
                "type": "function",
                "function": {"name": getattr(fn, "name", "") or "", "arguments": getattr(fn, "arguments", "") or ""},
            }
        )
    if calls:
        out["tool_calls"] = calls
    return out


def to_jsonable(value: Any) -> Any:
    """Metrics and records as plain JSON values (numpy scalars and arrays converted)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def format_transcript(messages: list[dict[str, Any]], *, system: bool = False) -> str:
    """A chat as plain text for reading: ``--- user`` / ``--- assistant`` / ``--- tool (id)`` headers,
    the assistant's tool calls one per line as ``name(arguments)``."""
    out = []
    for m in messages:
        role = m.get("role")
        if role == "system" and not system:
            continue
        if role == "tool":
            out.append(f"--- tool ({m.get('tool_call_id')})")
            out.append(str(m.get("content")))
        elif role == "assistant":
            out.append("--- assistant")
            if m.get("content"):
                out.append(str(m["content"]))
            for call in m.get("tool_calls") or []:
                fn = call.get("function", {})
                out.append(f"{call.get('id')}: {fn.get('name')}({fn.get('arguments')})")
        else:
            out.append(f"--- {role}")
            out.append(str(m.get("content")))
    return "\n".join(out)


def play_episode(endpoint: ChatEndpoint, env_id: str, seed: int, *, history: int | None = 2, transcript: bool = False) -> dict[str, Any]:
    """Play one episode of ``env_id`` (seed ``seed``) with the endpoint's model.

    :returns: the episode record: ``env_id``, ``seed``, ``model``, ``metrics`` (the env's, with
        the simulated tokens), ``llm`` (requests, real prompt and completion tokens, seconds,
        failures by kind, tool-call counts) and, with ``transcript=True``, the whole chat.
    :raises EndpointError: when a turn gets no reply (the episode is not finished).
    """
    from swarmgym.llm.text_env import SwarmTextEnv

    env = SwarmTextEnv(env_id, history=history)
    key = f"{env_id}/seed={seed}"
    _, info = env.reset(seed=seed)
    llm: dict[str, Any] = {
        "requests": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "seconds": 0.0,
        "failures": {},
        "usage_reported": True,
    }
    start = time.perf_counter()
    while True:
        try:
            reply = endpoint.complete(info["messages"], info["tools"], episode=key)
        except EndpointError as exc:
            for kind in getattr(exc, "failures", []):
                llm["failures"][kind] = llm["failures"].get(kind, 0) + 1
            exc.partial = llm  # type: ignore[attr-defined]
            raise
        llm["requests"] += 1 + len(reply.failures)
        llm["prompt_tokens"] += reply.prompt_tokens
        llm["completion_tokens"] += reply.completion_tokens
        llm["seconds"] += reply.seconds
        llm["usage_reported"] = llm["usage_reported"] and reply.usage_reported
        for kind in reply.failures:
            llm["failures"][kind] = llm["failures"].get(kind, 0) + 1
        _, _, terminated, truncated, info = env.step(reply.message)
        if terminated or truncated:
            break
    llm["wall_seconds"] = time.perf_counter() - start
    llm.update(info["text_stats"])
    record = {
        "env_id": env_id,
        "seed": int(seed),
        "model": endpoint.settings.model,
        "status": "finished",
        "metrics": to_jsonable(info["metrics"]),
        "llm": llm,
    }
    if transcript:
        record["transcript"] = env.transcript
    env.close()
    return record


__all__ = [
    "EPISODE_HEADER",
    "ChatEndpoint",
    "ChatSettings",
    "EndpointError",
    "FatalEndpointError",
    "Reply",
    "import_openai",
    "play_episode",
    "to_jsonable",
]
