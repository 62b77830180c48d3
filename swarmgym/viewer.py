"""The Gantt chart of an episode, drawn from its trace (:mod:`swarmgym.trace`).

One lane for the orchestrator and one per sub-agent slot; time (ticks) runs left to
right, from 0 to a little past the budget. What is drawn:

* sub-agent bars, from start to return, coloured by fate: ok (green), failed (red),
  wrong (purple: a silently wrong result), still running (light grey) or cut off
  when the episode ended (dark grey);
* the orchestrator's own work (``do``, blue) and its waits (a thin light grey bar),
  wasted turns (invalid actions) as red crosses;
* hand-offs: a triangle on the orchestrator lane at each spawn and a thin line down
  to the start of the sub-agent's bar (slanted when ``spawn_ticks`` delays the start);
* the budget (red dashed line) and the clock now (thin black line);
* the task's critical path (the longest work-weighted chain of its DAG): bars of
  nodes on it have a thick black outline.

Node ids are printed inside bars wide enough to hold them. matplotlib is used through
its Agg canvas only (no pyplot, no display), so rendering works headless and never
changes the process's matplotlib backend. matplotlib is imported when the first
frame is drawn; it comes with ``pip install "swarmgym[render]"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: Bar colours by what the bar is.
COLOURS: dict[str, str] = {
    "ok": "#2ca02c",
    "fail": "#d62728",
    "wrong": "#9467bd",
    "running": "#c7c7c7",
    "unfinished": "#7f7f7f",
    "do": "#1f77b4",
    "wait": "#ececec",
    "handoff": "#17becf",
}
#: Pixels per inch of frames; a frame is WIDTH_PX wide and a lane LANE_PX tall.
DPI = 100
WIDTH_PX = 960
LANE_PX = 30
MARGIN_PX = 150


def _import_matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError('render_mode="rgb_array" needs matplotlib; install the render extra: pip install "swarmgym[render]"') from exc
    return Figure, FigureCanvasAgg


def critical_path(work: list[int], parents: list[list[int]]) -> list[int]:
    """One longest work-weighted chain of the DAG (node ids, from a root to a sink)."""
    n = len(work)
    children: list[list[int]] = [[] for _ in range(n)]
    for i, ps in enumerate(parents):
        for p in ps:
            children[p].append(i)
    order: list[int] = []
    indegree = [len(p) for p in parents]
    ready = [i for i in range(n) if indegree[i] == 0]
    while ready:
        i = ready.pop()
        order.append(i)
        for c in children[i]:
            indegree[c] -= 1
            if indegree[c] == 0:
                ready.append(c)
    bottom = [0] * n
    for i in reversed(order):
        bottom[i] = work[i] + max((bottom[c] for c in children[i]), default=0)
    roots = [i for i in range(n) if not parents[i]]
    node = max(roots, key=lambda i: (bottom[i], -i))
    path = [node]
    while children[node]:
        node = max(children[node], key=lambda c: (bottom[c], -c))
        path.append(node)
    return path


def _bars(trace: dict[str, Any]) -> tuple[list[tuple], list[tuple], list[tuple], list[float]]:
    """(sub-agent bars, orchestrator bars, hand-offs, invalid ticks) from a trace.

    A bar is ``(lane, start, end, colour key, node)``; lane 0 is the orchestrator,
    lane ``1 + slot`` a sub-agent slot. A hand-off is ``(t_spawn, t_start, lane)``.
    """
    t_now = trace["t"]
    sub: list[tuple] = []
    orch: list[tuple] = []
    handoffs: list[tuple] = []
    invalid: list[float] = []
    open_: dict[int, dict] = {}
    starts = {(ev["node"], ev["attempt"]): ev["t"] for ev in trace["events"] if ev["type"] == "start"}
    for ev in trace["events"]:
        kind = ev["type"]
        if kind == "start":
            open_[ev["node"]] = ev
        elif kind in ("finish", "unfinished", "cancelled"):  # a cancelled sub-agent is drawn as an unfinished one
            open_.pop(ev["node"], None)
            sub.append((1 + ev["slot"], ev["started"], ev["t"], ev.get("fate", "unfinished"), ev["node"]))
        elif kind == "spawn" and ev["slot"] is not None:
            handoffs.append((ev["t"], starts[(ev["node"], ev["attempt"])], 1 + ev["slot"]))
        elif kind == "do":
            last = orch[-1] if orch else None
            if last is not None and last[3] == "do" and last[4] == ev["node"] and last[2] == ev["t"]:
                orch[-1] = (0, last[1], ev["until"], "do", ev["node"])
            else:
                orch.append((0, ev["t"], ev["until"], "do", ev["node"]))
        elif kind == "wait":
            orch.append((0, ev["t"], ev["until"], "wait", None))
        elif kind == "verify":  # the orchestrator's own work on the node, drawn as do
            orch.append((0, ev["t"], ev["until"], "do", ev["node"]))
        elif kind == "invalid":
            invalid.append(ev["t"] + 0.5)
    for ev in open_.values():
        sub.append((1 + ev["slot"], ev["t"], max(t_now, ev["t"]), "running", ev["node"]))
    return sub, orch, handoffs, invalid


class GanttViewer:
    """Draws Gantt frames of traces on one reusable Agg figure.

    :param max_subagents: sub-agent lanes (the env's ``config.max_subagents``).
    """

    def __init__(self, max_subagents: int) -> None:
        if isinstance(max_subagents, bool) or not isinstance(max_subagents, (int, np.integer)) or max_subagents < 0:
            raise ValueError(f"max_subagents must be an integer >= 0, got {max_subagents!r}")
        self.max_subagents = int(max_subagents)
        self._figure = None
        self._background = None
        self._labels: list[tuple[float, float, str, tuple[int, int, int]]] = []

    # a figure does not travel with a pickled or copied env; it is made again on the next frame
    def __getstate__(self) -> dict[str, Any]:
        return {"max_subagents": self.max_subagents, "_figure": None, "_background": None, "_labels": []}

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of a frame in pixels (both even, as video encoders need)."""
        height = MARGIN_PX + LANE_PX * (self.max_subagents + 1)
        return height + height % 2, WIDTH_PX

    def _setup(self) -> None:
        Figure, FigureCanvasAgg = _import_matplotlib()
        height, width = self.size
        fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
        FigureCanvasAgg(fig)
        self._figure = fig
        self._axes = fig.add_axes((0.1, 72 / height, 0.88, 1 - 112 / height))
        self._title = fig.text(0.5, 1 - 14 / height, "", ha="center", va="center", fontsize=9, animated=True)
        self._background = None
        self._budget = None

    def _draw_static(self, budget: int | None) -> None:
        """Axes, lanes, legend and budget line: drawn once per budget and kept as a bitmap."""
        from matplotlib.patches import Patch

        ax = self._axes
        ax.clear()
        lanes = self.max_subagents + 1
        ax.set_ylim(lanes - 0.5, -0.5)
        ax.set_yticks(range(lanes), ["orchestrator"] + [f"sub-agent {k + 1}" for k in range(self.max_subagents)], fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        ax.set_xlabel("ticks (critical steps)", fontsize=8)
        labels = (
            ("do", "do"),
            ("ok", "ok"),
            ("fail", "failed"),
            ("wrong", "wrong"),
            ("running", "running"),
            ("unfinished", "cut off"),
            ("wait", "wait"),
        )
        handles = [Patch(color=COLOURS[k], label=label) for k, label in labels]
        handles.append(Patch(facecolor="white", edgecolor="black", linewidth=2, label="critical path"))
        ax.legend(
            handles=handles,
            loc="lower center",
            bbox_to_anchor=(0.5, 0.0),
            bbox_transform=self._figure.transFigure,
            ncol=8,
            fontsize=7,
            frameon=False,
        )
        if budget is None:
            ax.set_xlim(0, 1)
        else:
            ax.set_xlim(0, budget * 1.03 + 0.5)
            ax.axvline(budget, color=COLOURS["fail"], linestyle="--", linewidth=1.2)
            ax.text(budget, -0.5, " budget", color=COLOURS["fail"], fontsize=7, va="bottom", ha="left")
        canvas = self._figure.canvas
        canvas.draw()
        self._background = canvas.copy_from_bbox(self._figure.bbox)
        self._budget = budget

    def draw(self, trace: dict[str, Any] | None):
        """Draw ``trace`` on the figure's Agg canvas and return the figure.

        The static part (axes, lanes, legend, budget line) is drawn once per budget
        and restored as a bitmap; each frame draws only the bars, marks and labels.
        """
        from matplotlib.collections import LineCollection, PolyCollection

        if self._figure is None:
            self._setup()
        budget = None if trace is None else trace["budget"]
        if self._background is None or budget != self._budget:
            self._draw_static(budget)
        canvas, ax = self._figure.canvas, self._axes
        canvas.restore_region(self._background)
        if trace is None:
            self._title.set_text("not reset")
            self._figure.draw_artist(self._title)
            return self._figure
        t_now = trace["t"]
        on_path = set(critical_path(trace["graph"]["work"], trace["graph"]["parents"]))
        sub, orch, handoffs, invalid = _bars(trace)
        bars = sub + orch
        artists = []
        verts, faces, edges, widths = [], [], [], []
        for lane, start, end, key, node in bars:
            h = 0.36 if key == "wait" else 0.7
            verts.append([(start, lane - h / 2), (end, lane - h / 2), (end, lane + h / 2), (start, lane + h / 2)])
            faces.append(COLOURS[key])
            crit = node is not None and node in on_path
            edges.append("black" if crit else "white")
            widths.append(2.0 if crit else 0.5)
        artists.append(PolyCollection(verts, facecolors=faces, edgecolors=edges, linewidths=widths))
        if handoffs:
            segs = [[(ts, 0.35), (t0, lane - 0.35)] for ts, t0, lane in handoffs]
            artists.append(LineCollection(segs, colors=COLOURS["handoff"], linewidths=0.8))
        artists.append(LineCollection([[(t_now, -0.5), (t_now, self.max_subagents + 0.5)]], colors="black", linewidths=0.6))
        for artist in artists:
            ax.add_collection(artist, autolim=False)
        if handoffs:
            artists.append(
                ax.scatter(
                    [h[0] for h in handoffs],
                    [0.0] * len(handoffs),
                    marker="v",
                    s=22,
                    color=COLOURS["handoff"],
                    zorder=3,
                    edgecolors="black",
                    linewidths=0.4,
                )
            )
        if invalid:
            artists.append(ax.scatter(invalid, [0.0] * len(invalid), marker="x", s=30, color=COLOURS["fail"], zorder=3))
        span = ax.get_xlim()[1]
        height = self.size[0]
        self._labels = []
        for lane, start, end, key, node in bars:
            if node is not None and (end - start) / span > 0.022:
                x, y = ax.transData.transform(((start + end) / 2, lane))
                self._labels.append((x, height - y, str(node), (0, 0, 0) if key == "running" else (255, 255, 255)))
        for artist in artists:
            ax.draw_artist(artist)
            artist.remove()
        head = str(trace.get("env_id") or trace["family"])
        if trace.get("seed") is not None:
            head += f"  seed {trace['seed']}"
        if trace.get("orchestrator"):
            head += f"  {trace['orchestrator']}"
        head += f"  t={t_now}/{trace['budget']}  tokens {trace['tokens']:,}"
        if "metrics" in trace:
            head += f"  score {trace['metrics']['score']:.2f}"
        self._title.set_text(head)
        self._figure.draw_artist(self._title)
        return self._figure

    def frame(self, trace: dict[str, Any] | None) -> np.ndarray:
        """The Gantt chart of ``trace`` as an RGB array ``uint8[height, width, 3]``.

        Node ids are stamped onto the bars from bitmaps rendered once per label (text
        layout is the dearest part of a matplotlib frame).
        """
        self._labels = []
        fig = self.draw(trace)
        rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
        for x, y, text, colour in self._labels:
            _stamp(rgb, self._label_bitmap(text), x, y, colour)
        return rgb

    def _label_bitmap(self, text: str) -> np.ndarray:
        """Coverage (0..1) of ``text`` at the label size, rendered once and cached."""
        cache = self.__dict__.setdefault("_bitmaps", {})
        if text not in cache:
            from matplotlib.font_manager import FontProperties, findfont, get_font

            font = get_font(findfont(FontProperties(size=7)))
            font.clear()
            font.set_size(7, DPI)
            font.set_text(text, 0.0)
            font.draw_glyphs_to_bitmap(antialiased=True)
            cache[text] = np.asarray(font.get_image(), dtype=np.float32) / 255.0
        return cache[text]

    def save_png(self, trace: dict[str, Any], path: str | Path) -> Path:
        """Write the Gantt chart of ``trace`` as a PNG file; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        import matplotlib.image

        matplotlib.image.imsave(path, self.frame(trace))
        return path


def _stamp(rgb: np.ndarray, coverage: np.ndarray, x: float, y: float, colour: tuple[int, int, int]) -> None:
    """Blend a text bitmap of ``colour`` into ``rgb``, centred on pixel ``(x, y)`` (clipped at the edges)."""
    h, w = coverage.shape
    top, left = int(round(y - h / 2)), int(round(x - w / 2))
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + h, rgb.shape[0]), min(left + w, rgb.shape[1])
    if r0 >= r1 or c0 >= c1:
        return
    a = coverage[r0 - top : r1 - top, c0 - left : c1 - left, None]
    region = rgb[r0:r1, c0:c1]
    region[...] = (region * (1.0 - a) + np.asarray(colour, dtype=np.float32) * a + 0.5).astype(np.uint8)


def save_gantt(trace: dict[str, Any], path: str | Path) -> Path:
    """Write the Gantt chart of a trace (e.g. read with :func:`swarmgym.trace.read_trace`) as a PNG."""
    return GanttViewer(int(trace["max_subagents"])).save_png(trace, path)


__all__ = ["COLOURS", "GanttViewer", "critical_path", "save_gantt"]
