"""The reports' building blocks, on bokeh: time series with fault windows shaded, heatmaps, a service graph,
a timeline, text and tables; :func:`page` writes them as one self-contained HTML file (bokeh's scripts
inlined, nothing fetched when it is opened). Every chart has a ``name`` the browser tests look up.

Bokeh was chosen by the two costs the reports care about, measured on this project's machine (see
docs/reports.md): its inlined scripts are 1.6 MB and evaluate in about 0.3 s in headless Chromium, where
plotly's are 4.6 MB and take about 1.5 s before the first chart is drawn; installed sizes are alike.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "Band",
    "Window",
    "graph_chart",
    "heading",
    "heatmap",
    "page",
    "para",
    "table",
    "time_chart",
    "timeline_chart",
]

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip
FAULT_FILL = "#d62728"
WIDTH = 1100


@dataclass(frozen=True)
class Window:
    """A shaded interval on a time chart (a fault), in the chart's x units."""

    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Band:
    """A filled band between two lines (an expected range)."""

    x: Sequence[float]
    lo: Sequence[float]
    hi: Sequence[float]
    label: str


def _esc(s: object) -> str:
    return html.escape(str(s), quote=True)


def heading(text: str, level: int = 2, name: str | None = None) -> str:
    attr = f" id='{_esc(name)}'" if name else ""
    return f"<h{level}{attr}>{_esc(text)}</h{level}>"


def para(text_html: str, name: str | None = None) -> str:
    """A paragraph; ``text_html`` is HTML the caller has escaped."""
    attr = f" id='{_esc(name)}'" if name else ""
    return f"<p{attr}>{text_html}</p>"


def table(rows: Sequence[Sequence[object]], header: Sequence[str] | None = None, name: str | None = None) -> str:
    attr = f" id='{_esc(name)}'" if name else ""
    out = [f"<table{attr}>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>")
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{_esc(v)}</td>" for v in r) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _clean(y: npt.ArrayLike, fmt: str = ".6g") -> list[float]:
    """Floats for the JSON the page carries, to 6 significant digits (what a chart can show); NaN stays
    NaN (a gap in the line)."""
    return [float(format(v, fmt)) for v in np.asarray(y, np.float64).tolist()]


def time_chart(
    name: str,
    title: str,
    x: Sequence[float],
    series: Mapping[str, npt.ArrayLike],
    *,
    y_label: str,
    x_label: str = "simulated time (UTC)",
    datetime: bool = True,
    windows: Sequence[Window] = (),
    bands: Sequence[Band] = (),
    marks: dict[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    dashed: Sequence[str] = (),
    height: int = 280,
    y_log: bool = False,
    right: Sequence[str] = (),
    right_label: str = "",
) -> Any:
    """Lines over time (x in ms since the epoch when ``datetime``, else plain numbers); legend entries hide
    their line when clicked; ``windows`` shaded and labelled; ``marks`` drawn as points (drops, say); the
    series named in ``right`` use a second axis on the right (another scale)."""
    from bokeh.models import BoxAnnotation, ColumnDataSource, DataRange1d, HoverTool, Label, LinearAxis
    from bokeh.plotting import figure

    fig = figure(
        name=name,
        title=title,
        width=WIDTH,
        height=height,
        x_axis_type="datetime" if datetime else "linear",
        y_axis_type="log" if y_log else "linear",
        x_axis_label=x_label,
        y_axis_label=y_label,
        tools="pan,xwheel_zoom,box_zoom,reset,save",
        toolbar_location="above",
    )
    for band in bands:
        src = ColumnDataSource({"x": list(band.x), "lo": _clean(band.lo), "hi": _clean(band.hi)})
        fig.varea(x="x", y1="lo", y2="hi", source=src, fill_color="#999999", fill_alpha=0.25, legend_label=band.label)
    xs = _clean(x, ".15g")  # times: ms since the epoch, to the µs
    if right:
        fig.extra_y_ranges = {"right": DataRange1d(start=0)}
        fig.add_layout(LinearAxis(y_range_name="right", axis_label=right_label), "right")
    left_lines: list[Any] = []
    right_lines: list[Any] = []
    for i, (label, y) in enumerate(series.items()):
        ys = _clean(y)
        src = ColumnDataSource({"x": xs, "y": ys})
        color = PALETTE[i % len(PALETTE)]
        where = {"y_range_name": "right"} if label in right else {}
        line = fig.line(
            x="x",
            y="y",
            source=src,
            color=color,
            line_width=2,
            line_dash="dashed" if label in dashed else "solid",
            legend_label=label,
            name=label,
            **where,
        )
        (right_lines if label in right else left_lines).append(line)
        if len(xs) <= 30:  # a short run: a handful of points, each one visible
            fig.scatter(x="x", y="y", source=src, color=color, size=6, legend_label=label, **where)
        else:  # a value with no neighbour draws no line: a dot instead
            v = np.isfinite(np.asarray(ys, np.float64))
            alone = v & ~np.concatenate(([False], v[:-1])) & ~np.concatenate((v[1:], [False]))
            if alone.any():
                lone = {"x": [xs[k] for k in np.flatnonzero(alone)], "y": [ys[k] for k in np.flatnonzero(alone)]}
                fig.scatter(
                    x="x", y="y", source=ColumnDataSource(lone), color=color, size=4, legend_label=label, **where
                )
    if right:  # each axis fits its own lines (an auto range otherwise spans every line on the chart)
        fig.extra_y_ranges["right"].renderers = right_lines
        fig.y_range = DataRange1d(start=None if y_log else 0, renderers=left_lines)
    for label, (mx, my) in (marks or {}).items():
        if len(mx):
            fig.scatter(
                list(mx),
                _clean(my),
                marker="x",
                size=10,
                color=FAULT_FILL,
                line_width=2,
                legend_label=label,
                name=label,
            )
    for k, w in enumerate(windows):
        fig.add_layout(BoxAnnotation(left=w.start, right=w.end, fill_color=FAULT_FILL, fill_alpha=0.08))
        fig.add_layout(
            Label(
                x=w.start,
                y=4 + 13 * (k % 6),
                y_units="screen",
                text=w.label,
                text_font_size="10px",
                text_color=FAULT_FILL,
            )
        )
    fmt = "@x{%F %T}" if datetime else "@x{0.[00]}"
    fig.add_tools(
        HoverTool(
            tooltips=[("", "$name"), ("x", fmt), ("y", "@y{0.[000]}")],
            formatters={"@x": "datetime"} if datetime else {},
            mode="mouse",
        )
    )
    if fig.legend:
        fig.legend.click_policy = "hide"
        fig.legend.label_text_font_size = "10px"
        fig.legend.spacing = 0
        fig.legend.padding = 4
        fig.legend.ncols = max(1, math.ceil(len(fig.legend.items) / max(1, (height - 40) // 19)))  # all shown
        fig.add_layout(fig.legend[0], "right")  # beside the plot, never over the lines
    if not y_log:
        fig.y_range.start = 0
    return fig


def heatmap(
    name: str,
    title: str,
    rows: Sequence[str],
    cols: Sequence[str],
    values: npt.ArrayLike,
    *,
    diverging: bool = False,
    highlight_rows: Sequence[str] = (),
    faded_rows: Sequence[str] = (),
    extra: dict[str, Sequence[Sequence[str]]] | None = None,
    size: int | None = None,
) -> Any:
    """A matrix as coloured cells (rows top to bottom), values written in the cells; ``diverging`` centres
    the colours on 0 (a difference); ``highlight_rows`` outlined in red; ``faded_rows`` drawn pale (and
    left out of the colour range); ``extra`` adds hover fields."""
    from bokeh.models import BasicTicker, ColorBar, ColumnDataSource, HoverTool, LinearColorMapper
    from bokeh.palettes import RdBu11, Viridis256
    from bokeh.plotting import figure

    v = np.asarray(values, np.float64)
    R, C = v.shape
    if size is None:  # two matrices side by side fit in 1,280 pixels
        size = max(16, min(34, 360 // max(C, 1)))
    show = size >= 22  # numbers in the cells when they fit (always on hover)
    data: dict[str, list[Any]] = {"row": [], "col": [], "value": [], "text": [], "line": [], "alpha": []}
    for k in extra or {}:
        data[k] = []
    hl, faded = set(highlight_rows), set(faded_rows)
    for i in range(R):
        for j in range(C):
            x = v[i, j]
            data["row"].append(rows[i])
            data["col"].append(cols[j])
            data["value"].append(float(x) if math.isfinite(x) else float("nan"))
            blank = not show or not math.isfinite(x) or (abs(x) < 0.0005 and not diverging)
            data["text"].append("" if blank else f"{x:.2f}")
            data["line"].append(FAULT_FILL if rows[i] in hl else None)
            data["alpha"].append(0.3 if rows[i] in faded else 1.0)
            for k, m in (extra or {}).items():
                data[k].append(m[i][j])
    keep = np.array([r not in faded for r in rows], bool)
    finite = v[keep][np.isfinite(v[keep])]  # the colours' range: the rows that count
    if diverging:
        lim = max(0.01, float(np.max(np.abs(finite))) if finite.size else 0.01)
        mapper = LinearColorMapper(palette=list(reversed(RdBu11)), low=-lim, high=lim, nan_color="#f4f4f4")
    else:
        mapper = LinearColorMapper(palette=Viridis256, low=0.0, high=1.0, nan_color="#f4f4f4")
    fig = figure(
        name=name,
        title=title,
        x_range=list(cols),
        y_range=list(reversed(rows)),
        width=min(WIDTH, 240 + size * C),
        height=130 + size * R,
        tools="save,reset",
        toolbar_location="above",
        x_axis_location="above",
    )
    src = ColumnDataSource(data)
    fig.rect(
        x="col",
        y="row",
        width=1,
        height=1,
        source=src,
        fill_color={"field": "value", "transform": mapper},
        fill_alpha="alpha",
        line_color="line",
        line_width=3,
    )
    fig.text(
        x="col",
        y="row",
        text="text",
        source=src,
        text_align="center",
        text_baseline="middle",
        text_font_size="8px",
        text_color="#222222" if diverging else "#ffffff",
    )
    fig.add_layout(ColorBar(color_mapper=mapper, ticker=BasicTicker(desired_num_ticks=6), width=10), "right")
    fig.xaxis.major_label_orientation = math.pi / 3
    fig.grid.visible = False
    tips = [("from", "@row"), ("to", "@col"), ("value", "@value{0.0000}")]
    tips += [(k, f"@{k}") for k in extra or {}]
    fig.add_tools(HoverTool(tooltips=tips))
    return fig


def _layers(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, tuple[float, float]]:
    """A layered drawing: a node's column is its longest path from a node nobody calls; rows spread evenly."""
    depth = dict.fromkeys(nodes, 0)
    for _ in range(len(nodes)):  # longest-path relaxation; cycles stop at len(nodes) rounds
        changed = False
        for a, b in edges:
            if a in depth and b in depth and depth[b] < depth[a] + 1 and depth[a] + 1 < len(nodes):
                depth[b] = depth[a] + 1
                changed = True
        if not changed:
            break
    cols: dict[int, list[str]] = {}
    for n in nodes:
        cols.setdefault(depth[n], []).append(n)
    pos = {}
    for d, members in cols.items():
        for i, n in enumerate(members):
            pos[n] = (float(d), (i + 1) / (len(members) + 1))
    return pos


def graph_chart(
    name: str,
    title: str,
    nodes: Sequence[str],
    edges: Sequence[tuple[str, str]],
    *,
    node_faults: dict[str, list[str]] | None = None,
    edge_faults: dict[tuple[str, str], list[str]] | None = None,
    node_info: dict[str, str] | None = None,
) -> Any:
    """The service graph, callers left of callees; edges and services a fault touched in red, with the
    faults' ids on hover."""
    from bokeh.models import ColumnDataSource, HoverTool, LabelSet
    from bokeh.plotting import figure

    nf = node_faults or {}
    ef = edge_faults or {}
    pos = _layers(nodes, edges)
    width = max(1.0, max((p[0] for p in pos.values()), default=0.0))
    fig = figure(
        name=name,
        title=title,
        width=WIDTH,
        height=max(
            260,
            60
            * max(1, max((sum(1 for p in pos.values() if p[0] == d) for d in {p[0] for p in pos.values()}), default=1)),
        ),
        x_range=(-0.35, width + 0.6),
        y_range=(0, 1),
        tools="save,reset,hover",
        toolbar_location="above",
    )
    fig.axis.visible = False
    fig.grid.visible = False
    ex: list[list[float]] = []
    ey: list[list[float]] = []
    ecol: list[str] = []
    etip: list[str] = []
    ewid: list[float] = []
    for a, b in edges:
        if a not in pos or b not in pos:
            continue
        (x0, y0), (x1, y1) = pos[a], pos[b]
        ex.append([x0, x1])
        ey.append([y0, y1])
        hit = ef.get((a, b), [])
        ecol.append(FAULT_FILL if hit else "#888888")
        ewid.append(3.5 if hit else 1.5)
        etip.append(f"{a} -> {b}" + (f" (faults: {', '.join(hit)})" if hit else ""))
    fig.multi_line(
        xs="xs",
        ys="ys",
        source=ColumnDataSource({"xs": ex, "ys": ey, "color": ecol, "tip": etip, "w": ewid}),
        line_color="color",
        line_width="w",
        line_alpha=0.8,
    )
    names = [n for n in nodes if n in pos]
    src = ColumnDataSource(
        {
            "x": [pos[n][0] for n in names],
            "y": [pos[n][1] for n in names],
            "name": names,
            "color": [FAULT_FILL if nf.get(n) else "#1f77b4" for n in names],
            "tip": [
                n
                + (f" (faults: {', '.join(nf[n])})" if nf.get(n) else "")
                + (f"; {node_info[n]}" if node_info and n in node_info else "")
                for n in names
            ],
        }
    )
    fig.scatter(x="x", y="y", source=src, size=18, color="color", line_color="#ffffff", line_width=2)
    fig.add_layout(LabelSet(x="x", y="y", text="name", source=src, x_offset=12, y_offset=-6, text_font_size="11px"))
    fig.select_one(HoverTool).tooltips = [("", "@tip")]
    return fig


def timeline_chart(
    name: str,
    title: str,
    rows: Sequence[str],
    bars: Mapping[str, tuple[Sequence[str], Sequence[float], Sequence[float], Sequence[str]]],
    points: Mapping[str, tuple[Sequence[str], Sequence[float], Sequence[str]]] | None = None,
) -> Any:
    """One row per item (a fault), bars for intervals (``label -> (row, start, end, tip)``) and points for
    instants (``label -> (row, time, tip)``), x in ms since the epoch."""
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.plotting import figure

    fig = figure(
        name=name,
        title=title,
        y_range=list(reversed(rows)),
        x_axis_type="datetime",
        width=WIDTH,
        height=170 + 34 * max(1, len(rows)),
        tools="pan,xwheel_zoom,box_zoom,reset,save",
        toolbar_location="above",
        x_axis_label="time (UTC)",
    )
    heights = {0: 0.7, 1: 0.35, 2: 0.2}
    for i, (label, (r, s, e, tip)) in enumerate(bars.items()):
        src = ColumnDataSource({"row": list(r), "left": list(s), "right": list(e), "tip": list(tip)})
        fig.hbar(
            y="row",
            left="left",
            right="right",
            height=heights.get(i, 0.2),
            source=src,
            color=PALETTE[(3, 2, 1, 0)[i % 4]],
            fill_alpha=0.55 if i == 0 else 0.85,
            legend_label=label,
        )
    for i, (label, (r, t, tip)) in enumerate((points or {}).items()):
        src = ColumnDataSource({"row": list(r), "x": list(t), "tip": list(tip)})
        fig.scatter(
            x="x", y="row", source=src, marker="diamond", size=9, color=PALETTE[(4, 7)[i % 2]], legend_label=label
        )
    fig.add_tools(HoverTool(tooltips=[("", "@tip")]))
    if fig.legend:
        fig.legend.click_policy = "hide"
        fig.add_layout(fig.legend[0], "below")
        fig.legend.orientation = "horizontal"
    return fig


_STYLE = f"""
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 12px 24px; color: #222; }}
p {{ max-width: {WIDTH}px; }}
table {{ border-collapse: collapse; font-size: 13px; margin: 6px 0 12px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }}
.chart {{ margin: 6px 0 18px; }}
.side {{ display: flex; flex-wrap: wrap; gap: 8px 24px; align-items: flex-start; }}
"""

# Charts are drawn when they scroll near the window (each one costs the browser about 60 ms to lay out and
# draw; a report holds a dozen), so the page opens in the time its first screen takes. Printing, or calling
# emitterRenderAll(), draws them all; window.emitterDrawn counts the charts drawn so far.
_LAZY = """
(function () {
  const items = JSON.parse(document.getElementById("emitter-charts").textContent);
  window.emitterDrawn = 0;
  function draw(el) {
    if (el.dataset.drawn) return;
    el.dataset.drawn = "1";
    Bokeh.embed.embed_item(items[el.id], el.id).then(function () { window.emitterDrawn += 1; });
  }
  const charts = Array.from(document.querySelectorAll(".chart"));
  window.emitterCharts = charts.length;
  window.emitterRenderAll = function () { charts.forEach(draw); };
  const seen = new IntersectionObserver(function (entries) {
    entries.forEach(function (e) { if (e.isIntersecting) { seen.unobserve(e.target); draw(e.target); } });
  }, { rootMargin: "100px" });
  charts.forEach(function (el) { seen.observe(el); });
  window.addEventListener("beforeprint", window.emitterRenderAll);
})();
"""


def page(title: str, blocks: Sequence[Any]) -> str:
    """One self-contained HTML file holding ``blocks`` top to bottom: HTML strings, bokeh charts, or tuples
    of charts side by side; bokeh's scripts are inlined, so nothing is fetched when it is opened."""
    import json

    from bokeh.core.validation import silence
    from bokeh.core.validation.warnings import MISSING_RENDERERS
    from bokeh.embed import json_item
    from bokeh.embed.bundle import bundle_for_objs_and_resources
    from bokeh.resources import INLINE

    silence(MISSING_RENDERERS, True)  # an empty run's charts have no lines: no warning per chart on the terminal

    charts: list[Any] = []
    items: dict[str, Any] = {}
    body = []

    def place(chart: Any) -> str:
        cid = f"chart-{len(items)}"
        charts.append(chart)
        items[cid] = json_item(chart, cid)
        h = int(getattr(chart, "height", 300) or 300) + 40
        return f"<div class='chart' id='{cid}' data-name='{_esc(chart.name or '')}' style='min-height:{h}px'></div>"

    for b in blocks:
        if isinstance(b, str):
            body.append(b)
        elif isinstance(b, tuple):  # side by side
            body.append("<div class='side'>" + "".join(place(c) for c in b) + "</div>")
        else:
            body.append(place(b))
    # no "<" left in the data: "</script>" or "<!--" inside a name cannot end or hide the script element
    data = json.dumps(items, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e")
    scripts = bundle_for_objs_and_resources(charts, INLINE).scripts() if charts else ""
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_esc(title)}</title><style>{_STYLE}</style>{scripts}</head><body>"
        + "\n".join(body)
        + f"<script type='application/json' id='emitter-charts'>{data}</script><script>{_LAZY}</script></body></html>\n"
    )
