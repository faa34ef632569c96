"""The end-to-end question at every setting of a sweep, and other plans at the headline setting.

The settings (``PACES`` x ``SPANS``), the plans (``PLAN``, ``SHAPES``) and the four ways to answer
are in ``benchmarks/endtoend.py``; this module runs them and turns them into rows, one record per
setting (``params["sweep"]``, read by the chart) and one per plan shape (``params["shapes"]``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from .endtoend import (HEADLINE, PACES, PLAN, PLAN_RUN_TARGET, REACT_TARGET, SHAPES, SPANS, Scenario, Setting,
                       measure, streaming_ceiling)
from .harness import Config, Row, Workload, line, paired, scaled

__all__ = ["end_to_end_sweep"]


def end_to_end_sweep(config: Config) -> Workload:
    """The ``e2e`` question at every setting of ``PACES`` x ``SPANS``: the four times to answer, the
    speedups of (c) over (a) and (b), the worst wait from a line emitted to its tool in (c), and the
    ceiling streaming allows over (b); then the ``SHAPES`` at the headline setting.

    Each runs ``reps // 5`` times (at least once): its figures are set by sleeps and differ by about
    0.2 % between repetitions, and the sweep at full length takes minutes."""
    factor = config.pick(1.0, 0.01, 0.005)
    reps = max(1, config.reps // 5)
    settings = [Setting(pace, span) for pace in PACES for span in SPANS]
    sweep: List[Dict[str, Any]] = []
    shapes: List[Dict[str, Any]] = []
    workload = Workload("e2e-sweep", f"the e2e question at {len(PACES)} model paces x {len(SPANS)} tool spans, "
                        f"then {len(SHAPES)} other plans at the headline; {reps} repetition(s) each"
                        + ("" if factor == 1 else f", every time x {factor:g}"),
                        {"paces": [p._asdict() for p in PACES], "spans": [s._asdict() for s in SPANS],
                         "plan": PLAN._asdict(), "shapes_measured": [shape._asdict() for shape in SHAPES],
                         "time_factor": factor, "reps": reps, "headline": HEADLINE.label, "sweep": sweep,
                         "shapes": shapes, "targets": {"over_a": REACT_TARGET, "over_b": PLAN_RUN_TARGET}})
    for setting, shape in [(setting, PLAN) for setting in settings] + [(HEADLINE, shape) for shape in SHAPES]:
        label = setting.label if shape is PLAN else f"headline, {shape.name}"
        rows = _sweep_rows(label, len(shape.searches), measure(Scenario.of(setting, factor, shape), reps))
        workload.rows += list(rows.values())
        (sweep if shape is PLAN else shapes).append({
            "setting": label, "shape": shape.name, **setting.pace._asdict(), **setting.span._asdict(),
            "headline": setting == HEADLINE and shape is PLAN,
            **{key: rows[key].median for key in ("a", "b", "c", "d", "over_a", "over_b", "wait_ms")},
            "ceiling_over_b": streaming_ceiling(Scenario.of(setting, shape=shape))})
    workload.lines = _sweep_lines(workload, sweep, shapes)
    return workload


def _sweep_lines(workload: Workload, sweep: List[Dict[str, Any]], shapes: List[Dict[str, Any]]) -> List[Any]:
    """The summary's lines: the lowest speedup over (a) and the highest over (b) of the settings, and
    each shape's speedup over (b) (the figures come from the rows already in ``workload``)."""
    count = len(sweep)
    lowest = Row(f"lowest (c) over (a) of {count} settings", "x", [min(s["over_a"] for s in sweep)],
                 note=f"{sum(s['over_a'] >= REACT_TARGET for s in sweep)} of {count} reach {REACT_TARGET:g}x")
    highest = Row(f"highest (c) over (b) of {count} settings", "x", [max(s["over_b"] for s in sweep)],
                  note=f"{sum(s['over_b'] >= PLAN_RUN_TARGET for s in sweep)} of {count} reach {PLAN_RUN_TARGET:g}x")
    workload.rows += [lowest, highest]
    by_variant = {row.variant: row for row in workload.rows}
    return [line(f"(c) over (a), lowest of {count} settings", "x", ours=lowest, note=lowest.note),
            line(f"(c) over (b), highest of {count}", "x", ours=highest, note=highest.note)] + [
        line(f"(c) over (b), {shape['shape']}", "x", ours=by_variant[f"{shape['setting']}: (c)/(b)"],
             note=f"headline setting; ceiling {shape['ceiling_over_b']:.2f}x") for shape in shapes]


def _sweep_rows(label: str, searches: int, samples: Dict[str, Dict[str, List[Optional[float]]]]
                ) -> Dict[str, Row]:
    answers = {key: Row(f"{label}: ({key}) answer", "s", samples[name]["answer"]) for key, name in (
        ("a", "react"), ("b", "plan-run"), ("c", "streamed"), ("d", "baseline"))}
    over_a = Row(f"{label}: (c)/(a)", "x", paired(samples["react"]["answer"], samples["streamed"]["answer"]))
    over_b = Row(f"{label}: (c)/(b)", "x", paired(samples["plan-run"]["answer"], samples["streamed"]["answer"]))
    over_a.note = f"{'reaches' if over_a.median >= REACT_TARGET else 'under'} {REACT_TARGET:g}x"
    over_b.note = f"{'reaches' if over_b.median >= PLAN_RUN_TARGET else 'under'} {PLAN_RUN_TARGET:g}x"
    wait = Row(f"{label}: line -> tool", "ms", scaled(samples["streamed"]["worst tool"], "ms"),
               note=f"worst of the {searches} searches")
    return {**answers, "over_a": over_a, "over_b": over_b, "wait_ms": wait}
