"""The orchestrator's tools in the OpenAI function-calling schema, and the parser of tool calls.

Each tool names one action block of :class:`swarmgym.layout.ActionLayout`; a tool call is
turned into an action index with ``layout.encode`` (never by offset arithmetic here):

===================  =============  =========  ===============================================
tool                 action         ends turn  arguments
===================  =============  =========  ===============================================
``spawn_subagent``   ``spawn(i)``   no         ``{"node": i}``
``do_node``          ``do(i)``      yes        ``{"node": i}``
``wait``             ``wait``       yes        ``{}``
``answer``           ``answer``     yes        ``{}``
===================  =============  =========  ===============================================

The table is open: :func:`register_tool` adds a tool for a new action block (a mechanic
such as ``verify`` adds its block to the layout and its :class:`ToolSpec` here);
:func:`tool_table` offers only the tools whose action the env's layout has.

Parsing never raises on model output: a call that cannot be read (arguments that are not
JSON, an unknown tool, a missing or non-integer ``node``, a node outside the layout) comes
back as a :class:`ToolCall` with ``error`` set, and the text env answers it with that error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from swarmgym.layout import ACTION_BLOCKS, ActionLayout


@dataclass(frozen=True)
class ToolSpec:
    """One tool the orchestrator can call.

    :param name: the function name the model calls.
    :param action: the action block it maps to (a name in ``swarmgym.layout.ACTION_BLOCKS``).
    :param description: what the model reads about it.
    :param ends_turn: whether the call is the turn's timed action (False: the turn goes on).
    """

    name: str
    action: str
    description: str
    ends_turn: bool

    @property
    def takes_node(self) -> bool:
        """Whether the tool's action is per node (its one argument is ``node``)."""
        return dict(ACTION_BLOCKS)[self.action]

    def schema(self) -> dict[str, Any]:
        """The tool in the OpenAI function-calling (``tools=[...]``) JSON schema."""
        properties: dict[str, Any] = {}
        required: list[str] = []
        if self.takes_node:
            properties["node"] = {"type": "integer", "minimum": 0, "description": "the node id (the 'id' column of the node table)"}
            required.append("node")
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {"type": "object", "properties": properties, "required": required, "additionalProperties": False},
            },
        }


#: Every known tool by name, in the order they are offered.
TOOLS: dict[str, ToolSpec] = {}


def register_tool(spec: ToolSpec) -> ToolSpec:
    """Add (or replace) a tool; its ``action`` must be an action block of the layout module."""
    if spec.action not in dict(ACTION_BLOCKS):
        raise ValueError(f"tool {spec.name!r}: action must be one of {[b for b, _ in ACTION_BLOCKS]}, got {spec.action!r}")
    if not spec.name or not spec.name.replace("_", "").isalnum():
        raise ValueError(f"tool name must be letters, digits and underscores, got {spec.name!r}")
    TOOLS[spec.name] = spec
    return spec


register_tool(
    ToolSpec(
        "spawn_subagent",
        "spawn",
        "Hand a ready node to a new sub-agent, which works on it in parallel and reports back when done. "
        "Does not end your turn: you may spawn several sub-agents, then end the turn with do_node, wait or answer. "
        "Needs a free sub-agent slot, spawns left this turn, and attempts left on the node. "
        "A sub-agent may fail (the node becomes ready again) or silently return a wrong result; "
        "nodes with more context (parents) cost more tokens to hand off and fail more often.",
        ends_turn=False,
    )
)
register_tool(
    ToolSpec(
        "do_node",
        "do",
        "Work one step on a ready or active node yourself (reliable, one step per turn). Ends your turn: the clock advances one tick.",
        ends_turn=True,
    )
)
register_tool(
    ToolSpec(
        "wait",
        "wait",
        "Let the clock run until the next sub-agent reports back. Ends your turn. Only while a sub-agent is running.",
        ends_turn=True,
    )
)
register_tool(
    ToolSpec(
        "answer",
        "answer",
        "Submit the finished outputs now; the episode ends and is scored (F1 over the target nodes). "
        "Call it once every target node is done.",
        ends_turn=True,
    )
)


def tool_table(layout: ActionLayout | None = None) -> list[ToolSpec]:
    """The tools offered for ``layout``: every registered tool whose action block the layout has."""
    blocks = {b for b, _ in ACTION_BLOCKS}
    if layout is not None:
        blocks = {b for b in blocks if _encodes(layout, b)}
    return [t for t in TOOLS.values() if t.action in blocks]


def _encodes(layout: ActionLayout, block: str) -> bool:
    """Whether ``layout`` has the action block (it can encode the block's first action)."""
    try:
        layout.encode(block, 0 if dict(ACTION_BLOCKS)[block] else None)
    except ValueError:
        return False
    return True


def tool_schemas(layout: ActionLayout | None = None) -> list[dict[str, Any]]:
    """The ``tools=[...]`` list of a chat-completions request."""
    return [t.schema() for t in tool_table(layout)]


@dataclass
class ToolCall:
    """One tool call of an assistant message, parsed.

    :param id: the call id (from the model, or ``call_<turn>_<k>`` when it gave none).
    :param name: the function name as the model wrote it.
    :param arguments: the arguments as the model wrote them (a JSON string, usually).
    :param tool: the tool, when the name is known.
    :param node: the node argument, for per-node tools that parsed.
    :param error: why the call cannot be played (None when it can).
    """

    id: str
    name: str
    arguments: str
    tool: ToolSpec | None = None
    node: int | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """``spawn_subagent(node=3)``, ``wait()``, or the raw name and arguments when unparsed."""
        if self.tool is not None and self.error is None:
            return f"{self.name}(node={self.node})" if self.tool.takes_node else f"{self.name}()"
        args = self.arguments if len(self.arguments) <= 60 else self.arguments[:57] + "..."
        return f"{self.name or '?'}({args})"

    def to_openai(self) -> dict[str, Any]:
        """The call as an entry of an assistant message's ``tool_calls``."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


def _as_node(value: Any, layout: ActionLayout) -> tuple[int | None, str | None]:
    if isinstance(value, bool):
        return None, f"'node' must be an integer, got {json.dumps(value)}"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        return None, f"'node' must be an integer, got {json.dumps(value)[:40]}"
    if not 0 <= value < layout.n_max:
        return None, f"node {value} does not exist (node ids are 0..{layout.n_max - 1} at most; see the node table)"
    return value, None


def parse_call(raw: Any, layout: ActionLayout, default_id: str, tools: Sequence[ToolSpec] | None = None) -> ToolCall:
    """Parse one tool call: OpenAI's ``{"id", "type": "function", "function": {"name", "arguments"}}``
    or the short ``{"name", "arguments"}``; ``arguments`` a JSON string or an object.

    A known tool's extra arguments are ignored; a string of digits is accepted as a node id.
    """
    offered = {t.name: t for t in (tools if tools is not None else tool_table(layout))}
    names = ", ".join(offered)
    if not isinstance(raw, Mapping):
        return ToolCall(
            default_id,
            "",
            _compact(raw),
            error=f"a tool call must be an object with a function name and arguments, got {_compact(raw)[:60]}",
        )
    call_id = raw.get("id") if isinstance(raw.get("id"), str) and raw.get("id") else default_id
    fn = raw.get("function") if isinstance(raw.get("function"), Mapping) else raw
    name = fn.get("name")
    args_raw = fn.get("arguments", {})
    args_text = args_raw if isinstance(args_raw, str) else _compact(args_raw)
    if not isinstance(name, str) or not name:
        return ToolCall(call_id, "", args_text, error=f"the tool call has no function name; the tools are {names}")
    call = ToolCall(call_id, name, args_text)
    tool = offered.get(name)
    if tool is None:
        call.error = f"unknown tool {name!r}; the tools are {names}"
        return call
    call.tool = tool
    if isinstance(args_raw, str):
        if args_raw.strip() == "":
            args: Any = {}
        else:
            try:
                args = json.loads(args_raw)
            except json.JSONDecodeError as exc:
                call.error = f"the arguments of {name} are not valid JSON ({exc.msg} at position {exc.pos}): {args_raw[:60]!r}"
                return call
    else:
        args = args_raw if args_raw is not None else {}
    if not isinstance(args, Mapping):
        call.error = f"the arguments of {name} must be a JSON object, got {_compact(args)[:60]}"
        return call
    call.extra = {k: v for k, v in args.items() if k != "node"}
    if tool.takes_node:
        if "node" not in args:
            call.error = f"{name} needs an integer argument 'node', e.g. {{\"node\": 3}}"
            return call
        call.node, call.error = _as_node(args["node"], layout)
    return call


def parse_message(
    action: Any, layout: ActionLayout, turn: int, tools: Sequence[ToolSpec] | None = None
) -> tuple[list[ToolCall], str | None, str | None]:
    """Parse an agent's action into tool calls.

    Accepted: a JSON string or the decoded object of an assistant message (``{"content", "tool_calls"}``),
    a list of calls, or one call. Returns ``(calls, content, error)``: ``error`` is set (and
    ``calls`` empty) when the action as a whole cannot be read.
    """
    if isinstance(action, (bytes, bytearray)):
        action = action.decode("utf-8", errors="replace")
    if isinstance(action, str):
        try:
            action = json.loads(action)
        except json.JSONDecodeError as exc:
            return [], None, f"the action is not valid JSON ({exc.msg} at position {exc.pos}): {action[:60]!r}"
    content = None
    if isinstance(action, Mapping) and ("tool_calls" in action or "content" in action or action.get("role") == "assistant"):
        content = action.get("content") if isinstance(action.get("content"), str) else None
        raw_calls = action.get("tool_calls") or []
        if not isinstance(raw_calls, list):
            return [], content, "'tool_calls' must be a list of tool calls"
    elif isinstance(action, Mapping):
        raw_calls = [action]
    elif isinstance(action, list):
        raw_calls = action
    else:
        return [], None, f"the action must be an assistant message, a list of tool calls or one tool call, got {_compact(action)[:60]}"
    calls = [parse_call(raw, layout, f"call_{turn}_{k}", tools) for k, raw in enumerate(raw_calls)]
    return calls, content, None


def _compact(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)


__all__ = ["TOOLS", "ToolCall", "ToolSpec", "parse_call", "parse_message", "register_tool", "tool_schemas", "tool_table"]
