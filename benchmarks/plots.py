"""Self-contained SVG charts of a benchmark run, written with the standard library only.

``write_plots(directory, meta, workloads)`` writes what the run measured: ``scale.svg`` (us per task
against plan size, log scale, per engine and input form), ``makespans.svg`` (the latency workload's
plans, warm and cold, side by side per engine) and ``end_to_end.svg`` (time to answer of the four
ways) and ``end_to_end_sweep.svg`` (the streamed plan's speedups over ReAct and over plan-then-run at
every setting of the sweep, with the targets) and ``end_to_end_plans.svg`` (the same at the headline
setting for each plan shape). A chart whose workload did not run is not written.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple
from xml.sax.saxutils import escape

from .harness import COLUMNS, Line, Workload

__all__ = ["write_plots", "line_chart", "bar_chart", "sweep_chart"]

COLOURS = {"ours": "#1f77b4", "yardstick": "#ff7f0e", "dask": "#2ca02c", "baseline": "#d62728"}
DASHES = {"dicts": "", "text": "6,3", "tasks": "2,2"}
WIDTH, HEIGHT = 760, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 190, 66, 76


def _svg(body: List[str], title: str, subtitle: str) -> str:
    head = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
            f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
            f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
            ] + [f'<text x="{LEFT}" y="{36 + 13 * n}" fill="#555" font-size="11">{escape(text)}</text>'
                 for n, text in enumerate(_wrap(subtitle, 110))]
    return "\n".join(head + body + ["</svg>"]) + "\n"


def _nice_max(value: float) -> float:
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _y_axis(top_value: float, unit: str) -> List[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = []
    for n in range(6):
        value = top_value * n / 5
        y = HEIGHT - BOTTOM - plot_h * n / 5
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>')
    parts.append(f'<text x="16" y="{TOP + plot_h / 2:.0f}" transform="rotate(-90 16 {TOP + plot_h / 2:.0f})" '
                 f'text-anchor="middle">{escape(unit)}</text>')
    return parts


def _legend(entries: Sequence[Tuple[str, str, str]]) -> List[str]:
    parts = []
    for n, (label, colour, dash) in enumerate(entries):
        y = TOP + 14 + n * 18
        x = WIDTH - RIGHT + 14
        parts.append(f'<line x1="{x}" y1="{y - 4}" x2="{x + 24}" y2="{y - 4}" stroke="{colour}" '
                     f'stroke-width="3" stroke-dasharray="{dash}"/>')
        parts.append(f'<text x="{x + 30}" y="{y}">{escape(label)}</text>')
    return parts


def line_chart(title: str, subtitle: str, unit: str, series: Dict[str, List[Tuple[float, float]]]) -> str:
    """Series of ``(x, y)`` points, x on a log scale; a series is named ``"<column> <form>"`` (its
    colour from the column, its dash from the form). Returns the SVG text."""
    points = [p for values in series.values() for p in values if math.isfinite(p[1])]
    if not points:
        raise ValueError("no finite points to plot")
    low, high = math.log10(min(x for x, _ in points)), math.log10(max(x for x, _ in points))
    top_value = _nice_max(max(y for _, y in points))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def place(x: float, y: float) -> Tuple[float, float]:
        fraction = 0.5 if high == low else (math.log10(x) - low) / (high - low)
        return LEFT + plot_w * fraction, HEIGHT - BOTTOM - plot_h * y / top_value

    body = _y_axis(top_value, unit)
    for x in sorted({x for x, _ in points}):
        px, _ = place(x, 0)
        body.append(f'<text x="{px:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">{x:,.0f}</text>')
    body.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 24}" text-anchor="middle">tasks in the plan '
                '(log scale)</text>')
    legend = []
    for name, values in series.items():
        column, _, form = name.partition(" ")
        colour, dash = COLOURS.get(column, "#555"), DASHES.get(form, "")
        placed = [place(x, y) for x, y in values if math.isfinite(y)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in placed)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2" '
                    f'stroke-dasharray="{dash}"/>')
        body += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in placed]
        legend.append((name, colour, dash))
    return _svg(body + _legend(legend), title, subtitle)


def bar_chart(title: str, subtitle: str, unit: str, groups: Dict[str, Dict[str, Optional[float]]],
              labels: Optional[Dict[str, str]] = None) -> str:
    """Groups of bars: ``{group: {column: value}}``; a value of None is drawn as "did not finish"
    (an arrow at the top). Bars taller than the axis are cut and marked with their value."""
    labels = labels or {}
    finite = [v for bars in groups.values() for v in bars.values() if v is not None and math.isfinite(v)]
    if not finite:
        raise ValueError("no finite values to plot")
    # The baseline, often 10-100x slower, would flatten every other bar: the axis stops at three
    # times the tallest other bar, and a cut bar carries its value and a "^".
    others = [v for bars in groups.values() for c, v in bars.items()
              if c != "baseline" and v is not None and math.isfinite(v)]
    cap = max(finite) if not others else min(max(finite), 3 * max(others))
    top_value = _nice_max(cap)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    columns = [c for c in COLUMNS if any(c in bars for bars in groups.values())] or \
        sorted({c for bars in groups.values() for c in bars})
    group_w = plot_w / max(1, len(groups))
    bar_w = min(28.0, group_w * 0.8 / max(1, len(columns)))
    body = _y_axis(top_value, unit)
    for g, (group, bars) in enumerate(groups.items()):
        present = [column for column in columns if column in bars]
        x0 = LEFT + g * group_w + (group_w - bar_w * len(present)) / 2
        for c, column in enumerate(present):
            value, x = bars[column], x0 + c * bar_w
            colour = COLOURS.get(column, "#555")
            if value is None or not math.isfinite(value):
                body.append(f'<text x="{x + bar_w / 2:.1f}" y="{TOP + 10}" text-anchor="middle" '
                            f'fill="{colour}">DNF</text>')
                continue
            height = plot_h * min(value, top_value) / top_value
            y = HEIGHT - BOTTOM - height
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{height:.1f}" '
                        f'fill="{colour}"/>')
            shown = (f"{value:,.0f}" if value >= 100 else f"{value:.3g}") + ("^" if value > top_value else "")
            if value > top_value:   # a white break near the top says the bar is cut
                body.append(f'<line x1="{x:.1f}" y1="{y + 56:.1f}" x2="{x + bar_w - 2:.1f}" y2="{y + 50:.1f}" '
                            f'stroke="white" stroke-width="3"/>')
            body.append(_value_label(x + bar_w / 2 - 1, y, shown, cut=value > top_value))
        centre = LEFT + g * group_w + group_w / 2
        for n, text in enumerate(_wrap(group, max(6, int(group_w / 6.5)))):
            body.append(f'<text x="{centre:.1f}" y="{HEIGHT - BOTTOM + 16 + 13 * n}" '
                        f'text-anchor="middle" font-size="11">{escape(text)}</text>')
    legend = [(labels.get(c, c), COLOURS.get(c, "#555"), "") for c in columns]
    return _svg(body + _legend(legend), title, subtitle)


# The sweep chart's two bars per setting: the record's key, the legend's label, the colour.
SPEEDUPS = (("over_a", "(c) over (a) ReAct", "#1f77b4"), ("over_b", "(c) over (b) plan-run", "#ff7f0e"))


def sweep_chart(title: str, subtitle: str, settings: Sequence[Dict[str, Any]], targets: Dict[str, float],
                x_title: str = "tool latencies (searches spread over the span), by model pace") -> str:
    """Two bars per setting (``over_a`` and ``over_b`` of each record of ``settings``, which also give
    ``tokens_per_s``, ``first_token``, ``low``, ``high``, ``headline`` and optionally
    ``ceiling_over_b``, drawn as a black tick, and ``label``, shown instead of the span), grouped by
    model pace, with a dashed line at each of ``targets`` (by the same keys). Returns the SVG text;
    raises ValueError when there is no finite value to draw."""
    values = [s[key] for s in settings for key, *_ in SPEEDUPS if s.get(key) is not None and math.isfinite(s[key])]
    if not values:
        raise ValueError("no finite speedups to plot")
    top_value = _nice_max(max(values + list(targets.values())) * 1.1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group_w = plot_w / len(settings)

    def height_of(value: float) -> float:
        return HEIGHT - BOTTOM - plot_h * min(value, top_value) / top_value

    body = _y_axis(top_value, "speedup (x), median")
    for key, _, colour in SPEEDUPS:
        if key in targets:
            y = height_of(targets[key])
            body.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="{colour}" '
                        f'stroke-width="1.5" stroke-dasharray="6,4"/>')
    for g, setting in enumerate(settings):
        body += _speedup_bars(setting, LEFT + g * group_w, group_w, height_of)
    body += _pace_labels(settings, group_w)
    body.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 12}" text-anchor="middle">{escape(x_title)}</text>')
    legend = [(label, colour, "") for _, label, colour in SPEEDUPS]
    legend += [(f"target {targets[key]:g}x", colour, "6,4") for key, _, colour in SPEEDUPS if key in targets]
    if any(setting.get("ceiling_over_b") is not None for setting in settings):
        legend.append(("ceiling of (c)/(b)", "black", ""))
    return _svg(body + _legend(legend), title, subtitle)


def _speedup_bars(setting: Dict[str, Any], left: float, group_w: float,
                  height_of: Callable[[float], float]) -> List[str]:
    """One setting's bars, their values, its ceiling tick and its span's label."""
    bar_w = min(22.0, group_w * 0.8 / len(SPEEDUPS))
    x0 = left + (group_w - bar_w * len(SPEEDUPS)) / 2
    ceiling = setting.get("ceiling_over_b")
    tick = None if ceiling is None or not math.isfinite(ceiling) else height_of(ceiling)
    parts = []
    for b, (key, _, colour) in enumerate(SPEEDUPS):
        value = setting.get(key)
        if value is None or not math.isfinite(value):
            continue
        x, y = x0 + b * bar_w, height_of(value)
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{HEIGHT - BOTTOM - y:.1f}" '
                     f'fill="{colour}"/>')
        if key == "over_b" and tick is not None:   # the ceiling: a black tick over the (b) bar
            parts.append(f'<line x1="{x - 3:.1f}" y1="{tick:.1f}" x2="{x + bar_w + 1:.1f}" y2="{tick:.1f}" '
                         f'stroke="black" stroke-width="2.5"/>')
            y = min(y, tick - 2)
        parts.append(_value_label(x + bar_w / 2 - 1, y, f"{value:.2f}", cut=False))
    span = setting.get("label") or f"{setting['low']:g}-{setting['high']:g} s"
    span += " *" if setting.get("headline") else ""
    for n, text in enumerate(_wrap(span, max(10, int(group_w / 6)))[:2]):
        parts.append(f'<text x="{left + group_w / 2:.1f}" y="{HEIGHT - BOTTOM + 14 + 12 * n}" '
                     f'text-anchor="middle" font-size="10">{escape(text)}</text>')
    return parts


def _pace_labels(settings: Sequence[Dict[str, Any]], group_w: float) -> List[str]:
    """Under each run of settings with one model pace, its label; a rule between runs."""
    paces: Dict[Tuple[float, float], List[int]] = {}
    for g, setting in enumerate(settings):
        paces.setdefault((setting["tokens_per_s"], setting["first_token"]), []).append(g)
    parts = []
    for (rate, first), members in paces.items():
        centre = LEFT + (members[0] + members[-1] + 1) * group_w / 2
        parts.append(f'<text x="{centre:.1f}" y="{HEIGHT - BOTTOM + 40}" text-anchor="middle" font-size="11">'
                     f'{rate:g} tok/s, first token {first:g} s</text>')
        if members[0] > 0:
            x = LEFT + members[0] * group_w
            parts.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM + 44}" stroke="#999"/>')
    return parts


def _value_label(x: float, y: float, text: str, cut: bool) -> str:
    """A bar's value, written upwards from just above its top (or downwards inside a cut bar, in
    white), so that the labels of narrow neighbouring bars never overlap."""
    if cut:
        return (f'<text x="{x:.1f}" y="{y + 4:.1f}" transform="rotate(90 {x:.1f} {y + 4:.1f})" '
                f'dy="3" fill="white" font-size="10">{escape(text)}</text>')
    return (f'<text x="{x:.1f}" y="{y - 3:.1f}" transform="rotate(-90 {x:.1f} {y - 3:.1f})" dy="3" '
            f'font-size="10">{escape(text)}</text>')


def _wrap(text: str, width: int) -> List[str]:
    """``text`` in lines of at most about ``width`` characters, split at spaces (three at most)."""
    lines: List[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines[:3]


def _medians(item: Line) -> Dict[str, Optional[float]]:
    values = {}
    for column, row in item.cells.items():
        median = row.median
        values[column] = median if math.isfinite(median) else None
    return values


def _machine(meta: Dict[str, Any]) -> str:
    return (f"{meta.get('cpu_count')} CPUs ({meta.get('cpu_model')}), Python {meta.get('python')}, "
            f"{meta.get('date')}, commit {str(meta.get('git_commit'))[:10]}")


def write_plots(directory: str, meta: Dict[str, Any], workloads: List[Workload]) -> List[str]:
    """Write the charts for the workloads that ran into ``directory`` (created if needed); returns
    the paths written."""
    os.makedirs(directory, exist_ok=True)
    by_name = {w.name: w for w in workloads if w.error is None}
    charts: Dict[str, str] = {}
    machine = _machine(meta)
    scale = by_name.get("throughput")
    if scale is not None and scale.params.get("scale"):
        series = {name: sorted((float(size), value) for size, value in points.items() if value is not None)
                  for name, points in scale.params["scale"].items()}
        charts["scale.svg"] = line_chart("Time per task against plan size (random DAG of no-ops)", machine,
                                         "us per task (median)", series)
    latency = by_name.get("latency")
    if latency is not None:
        groups = {item.what.replace("warm: ", "warm ").replace("cold: ", "cold "): _medians(item)
                  for item in latency.lines if item.what.startswith(("warm", "cold: "))
                  and "one task" not in item.what}
        charts["makespans.svg"] = bar_chart("Makespans, warm engine and one-shot (cold)", machine, "ms (median)",
                                            groups, {"yardstick": "textbook scheduler",
                                                     "baseline": "sleep-retry baseline"})
    e2e = by_name.get("e2e")
    if e2e is not None:
        answers = [row for row in e2e.rows if row.variant.endswith("time to answer")]
        groups = {row.variant.split(":")[0]: {"baseline" if row.variant.startswith("(d)") else "ours":
                                                    row.median} for row in answers}
        charts["end_to_end.svg"] = bar_chart("Time to answer, scripted model and tools", e2e.title, "s",
                                             groups, {"ours": "ours (median)",
                                                              "baseline": "baseline scheduler"})
    sweep = by_name.get("e2e-sweep")
    if sweep is not None and sweep.params.get("sweep"):
        charts["end_to_end_sweep.svg"] = sweep_chart(
            "Speedup of the streamed plan (c) at each model pace and tool span",
            f"{machine}; dashed: the targets; * the headline setting", sweep.params["sweep"],
            sweep.params.get("targets", {}))
        if sweep.params.get("shapes"):
            plans = [dict(record, label=f"{sweep.params['plan']['name']}, as written") for record in
                     sweep.params["sweep"] if record["headline"]]
            plans += [dict(record, label=record["shape"].replace(",", " searches,", 1)) for record in
                      sweep.params["shapes"]]
            charts["end_to_end_plans.svg"] = sweep_chart(
                "Speedup of the streamed plan (c) by the plan's length and order", f"{machine}; at the headline "
                f"setting ({sweep.params['headline']}); dashed: the targets; * the sweep's plan", plans,
                sweep.params.get("targets", {}), x_title="the plan: searches, and their order")
    written = []
    for filename, text in charts.items():
        path = os.path.join(directory, filename)
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
        written.append(path)
    return written
