"""Language-model orchestrators: swarmgym's tasks as chat messages and tool calls.

* :mod:`swarmgym.llm.tools` -- the tools (spawn a sub-agent, do a node, wait, answer) in the
  OpenAI function-calling schema, and the parser of tool calls into env actions;
* :mod:`swarmgym.llm.render` -- the deterministic text of a state and of what changed;
* :mod:`swarmgym.llm.text_env` -- :class:`SwarmTextEnv`, a Gymnasium env whose observation is
  that text and whose action is the assistant message of tool calls;
* :mod:`swarmgym.llm.text_policy` -- the text parsed back into the array observation, so an
  array orchestrator plays through text (the round trip);
* :mod:`swarmgym.llm.chat` -- a chat-completions endpoint playing episodes (the ``[llm]`` extra);
* :mod:`swarmgym.llm.eval` -- ``swarmgym llm-eval``: cached, resumable, concurrent evaluation;
* :mod:`swarmgym.llm.fake_server` -- a local scripted chat-completions server for tests and dry runs.
"""

from swarmgym.llm.render import SYSTEM_PROMPT, render_state
from swarmgym.llm.text_env import SwarmTextEnv, assistant_message
from swarmgym.llm.tools import TOOLS, ToolCall, ToolSpec, parse_message, register_tool, tool_schemas, tool_table

__all__ = [
    "SYSTEM_PROMPT",
    "TOOLS",
    "SwarmTextEnv",
    "ToolCall",
    "ToolSpec",
    "assistant_message",
    "parse_message",
    "register_tool",
    "render_state",
    "tool_schemas",
    "tool_table",
]
