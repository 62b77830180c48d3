"""docs/llm.md stays true: its worked example prints the transcript the page shows, and its tool
table lists the tools the env offers."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from swarmgym.layout import ActionLayout
from swarmgym.llm import tool_table

DOC = Path(__file__).resolve().parents[1] / "docs" / "llm.md"
pytestmark = pytest.mark.skipif(not DOC.exists(), reason="needs the source tree")


def _block(language: str) -> str:
    return re.findall(rf"```{language}\n(.+?)```", DOC.read_text(), flags=re.S)[0]


def test_docs__the_worked_example_prints_the_transcript_shown():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(_block("python"), "docs/llm.md example", "exec"), {})
    assert buf.getvalue() == _block("text")


def test_docs__the_tool_table_lists_the_offered_tools():
    rows = re.findall(r"^\| `(\w+)` \| `([\w()]+)` \| (yes|no) \|", DOC.read_text(), flags=re.M)
    offered = [
        (t.name, f"{t.action}(i)" if t.takes_node else t.action, "yes" if t.ends_turn else "no") for t in tool_table(ActionLayout(4))
    ]
    assert rows == offered
