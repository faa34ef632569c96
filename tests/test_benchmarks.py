"""Tests for the benchmark suite (``python -m benchmarks``).

One run of every workload at ``--tiny`` sizes happens in a subprocess with a time limit (so a hang
fails the test, and no pool, fork server or manager of the benchmarks outlives it in this process);
the tests below read its JSON, its table and its charts. No test checks a timing: only that each
workload ran, recorded what it says it measures, and that the records are consistent.
"""

import json
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from llmcompiler import parse_plan  # noqa: E402
from llmcompiler.plan import validate_tasks  # noqa: E402

from benchmarks import plans, yardstick  # noqa: E402
from benchmarks.cli import WORKLOADS  # noqa: E402
from benchmarks.endtoend import PacedLLM  # noqa: E402
from benchmarks.harness import COLUMNS, Row, Target, line, ratio_of  # noqa: E402
from benchmarks.plots import bar_chart, line_chart  # noqa: E402

ROW_KEYS = {"variant", "unit", "samples", "median", "min", "max", "did_not_finish", "limit_s", "per",
            "ratio", "reference", "note"}
# Workloads that wait for an engine feature; until the engine has it they report a skip line.
GUARDED = {"cache", "priority"}
SVG = "{http://www.w3.org/2000/svg}"


def _run(*args, timeout):
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Every workload once at --tiny sizes: (completed process, JSON document, plots directory)."""
    out = tmp_path_factory.mktemp("bench")
    done = _run("--tiny", "--json", str(out / "bench.json"), "--plots", str(out / "plots"), timeout=240)
    document = json.loads((out / "bench.json").read_text()) if (out / "bench.json").exists() else None
    return done, document, out / "plots"


def test_every_workload_runs_without_error(tiny):
    done, document, _ = tiny
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(document["workloads"]) == list(WORKLOADS)
    for name, workload in document["workloads"].items():
        assert workload["error"] is None, (name, workload["error"])


def test_the_json_names_the_machine_and_the_commit(tiny):
    _, document, _ = tiny
    meta = document["meta"]
    assert meta["cpu_count"] == os.cpu_count()
    assert meta["python"] == ".".join(map(str, sys.version_info[:3]))
    assert meta["tiny"] is True and meta["reps"] == 1
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    except OSError:  # no git on this machine: the suite records None
        assert meta["git_commit"] is None
        return
    if head.returncode == 0:
        assert meta["git_commit"].startswith(head.stdout.strip())
    else:
        assert meta["git_commit"] is None


def test_each_workload_records_rows_and_lines_that_agree(tiny):
    _, document, _ = tiny
    for name, workload in document["workloads"].items():
        if name in GUARDED and workload["skipped"]:
            assert not workload["rows"] and "not in this engine yet" in workload["skipped"][0]
            continue
        assert workload["rows"] and workload["lines"], name
        variants = {row["variant"] for row in workload["rows"]}
        for row in workload["rows"]:
            assert set(row) == ROW_KEYS, (name, row["variant"])
            assert row["samples"], (name, row["variant"])
            finished = [s for s in row["samples"] if s is not None]
            assert row["did_not_finish"] == len(row["samples"]) - len(finished)
            if finished:
                assert row["min"] <= row["median"] <= row["max"], (name, row["variant"])
        for item in workload["lines"]:
            assert set(item["cells"]) <= set(COLUMNS), (name, item["what"])
            assert set(item["cells"].values()) <= variants, (name, item["what"])
            assert "ours" in item["cells"] or "yardstick" in item["cells"], (name, item["what"])


def test_ours_finishes_every_measured_run(tiny):
    """A None sample (did not finish) is allowed for the baseline only."""
    _, document, _ = tiny
    for name, workload in document["workloads"].items():
        for row in workload["rows"]:
            if not row["variant"].startswith("baseline"):
                assert row["did_not_finish"] == 0, (name, row["variant"])


def test_targets_are_judged_on_the_figure_they_name(tiny):
    _, document, _ = tiny
    judged = 0
    for workload in document["workloads"].values():
        rows = {row["variant"]: row for row in workload["rows"]}
        for item in workload["lines"]:
            target = item["target"]
            if target is None:
                continue
            if target["on_ratio"]:
                value = None if item["ratio"] is None or item["ratio"]["lower_bound"] else item["ratio"]["value"]
            else:
                value = rows[item["cells"]["ours"]]["median"]
            expected = value is not None and Target(target["op"], target["bound"], target["text"]).met(value)
            assert target["met"] is expected, item["what"]
            judged += 1
    assert judged >= 20


def test_the_workloads_measure_every_figure_the_readme_names(tiny):
    _, document, _ = tiny
    lines = {(name, item["what"]) for name, w in document["workloads"].items() for item in w["lines"]}
    whats = " | ".join(what for _, what in lines)
    for form in ("dicts", "text", "tasks"):
        assert f"{form}, 1,000 tasks" in whats
    for needle in ("peak", "held after", "warm: one task", "cold: one task", "cold - warm", "parsed -> started",
                   "no-ops vs plain submit", "speedup over serial", "p99 / lone", "% of ideal",
                   "delay the callback adds", "set+get", "ReAct", "first line emitted"):
        assert needle in whats, needle


def test_the_throughput_workload_gives_a_scale_curve(tiny):
    _, document, _ = tiny
    scale = document["workloads"]["throughput"]["params"]["scale"]
    assert {"ours dicts", "ours text", "ours tasks", "yardstick dicts"} <= set(scale)
    for points in scale.values():
        assert [int(size) for size in points] == [100, 1000]
        assert all(value > 0 for value in points.values())


def test_the_table_has_one_line_per_measure_and_says_what_was_skipped(tiny):
    done, document, _ = tiny
    table = done.stdout[done.stdout.index("summary (medians"):]
    header = table.splitlines()[1]
    for column in ("workload", "measure", *COLUMNS, "ratio", "target", "met"):
        assert column in header
    count = sum(len(w["lines"]) for w in document["workloads"].values())
    skipped = sum(len(w["skipped"]) for w in document["workloads"].values())
    body = table.split("\n\n")[0].splitlines()[2:]
    assert len(body) == count + skipped
    assert sum(" skipped: " in text for text in body) == skipped
    if document["meta"]["dask"] is None:
        assert "dask is not installed" in done.stdout
        assert "skipped: dask: not installed" in done.stdout


def test_the_plots_are_well_formed_svg(tiny):
    _, _, plots = tiny
    names = sorted(path.name for path in plots.iterdir())
    assert names == ["end_to_end.svg", "end_to_end_plans.svg", "end_to_end_sweep.svg", "makespans.svg", "scale.svg"]
    for path in plots.iterdir():
        root = ET.parse(path).getroot()
        assert root.tag == f"{SVG}svg"
        assert root.findall(f".//{SVG}text"), path.name
    scale = ET.parse(plots / "scale.svg").getroot()
    assert len(scale.findall(f".//{SVG}polyline")) >= 6   # ours and yardstick, three forms
    bars = ET.parse(plots / "end_to_end.svg").getroot().findall(f".//{SVG}rect")
    assert len(bars) == 1 + 4                            # the background, then (a) to (d)
    sweep = ET.parse(plots / "end_to_end_sweep.svg").getroot().findall(f".//{SVG}rect")
    assert len(sweep) == 1 + 2 * 9                       # the background, two speedups per setting
    plans = ET.parse(plots / "end_to_end_plans.svg").getroot().findall(f".//{SVG}rect")
    assert len(plans) == 1 + 2 * 4                       # the sweep's plan and three other shapes


def test_the_end_to_end_sweep_records_every_setting(tiny):
    _, document, _ = tiny
    params = document["workloads"]["e2e-sweep"]["params"]
    records = params["sweep"]
    assert [(r["tokens_per_s"], r["low"]) for r in records] == [
        (pace["tokens_per_s"], span["low"]) for pace in params["paces"] for span in params["spans"]]
    assert sum(r["headline"] for r in records) == 1
    for record in records:
        assert record["over_a"] == pytest.approx(record["a"] / record["c"], rel=1e-9)
        assert record["over_b"] == pytest.approx(record["b"] / record["c"], rel=1e-9)
        assert record["wait_ms"] >= 0 and 1 < record["ceiling_over_b"] < 2
    assert [shape["shape"] for shape in params["shapes"]] == [shape["name"] for shape in params["shapes_measured"]]


def test_help_lists_every_workload():
    done = _run("--help", timeout=30)
    assert done.returncode == 0
    for name in WORKLOADS:
        assert f"  {name} " in done.stdout
    for option in ("--quick", "--only", "--json", "--plots", "--tiny"):
        assert option in done.stdout


def test_unknown_workload_is_refused_by_name():
    done = _run("--only", "latency,nope", timeout=30)
    assert done.returncode == 2
    assert "unknown workload nope" in done.stderr


# -- pieces, without a subprocess --------------------------------------------------------------------


def _sum_tool(*values):
    return 1 + sum(values)


def _reference(tasks):
    """A plain serial evaluation of a DAG of _sum_tool: each task is 1 + the sum of its refs."""
    values = {}
    for task in tasks:
        values[task.idx] = 1 + sum(values[int(arg[1:])] for arg in task.args)
    return values


def test_the_three_input_forms_are_one_dag():
    tasks = plans.random_dag(300, seed=7)
    assert [t.dependencies for t in tasks] == [t.dependencies for t in plans.random_dag(300, seed=7)]
    assert all(len(t.dependencies) <= 3 and all(d < t.idx for d in t.dependencies) for t in tasks)
    assert any(t.dependencies for t in tasks)
    from_dicts = validate_tasks(plans.random_dag_dicts(300, seed=7))
    from_text = parse_plan(plans.random_dag_text(300, seed=7))
    assert [t.dependencies for t in from_dicts] == [t.dependencies for t in tasks]
    assert [t.dependencies for t in from_text] == [t.dependencies for t in tasks]


def test_the_textbook_scheduler_matches_a_serial_reference_on_every_form():
    tasks = plans.random_dag(500, seed=11)
    expected = _reference(tasks)
    tools = {"noop": _sum_tool}
    with ThreadPoolExecutor(8) as pool:
        for calls in (yardstick.from_tasks(tasks, tools),
                      yardstick.from_dicts(plans.random_dag_dicts(500, seed=11), tools),
                      yardstick.from_text(plans.random_dag_text(500, seed=11), tools)):
            assert yardstick.run_textbook(calls, pool) == expected


def test_the_textbook_scheduler_raises_a_tool_error():
    def broken(*values):
        raise LookupError("on purpose")

    calls = yardstick.from_tasks(plans.chain(3, "noop"), {"noop": broken})
    with ThreadPoolExecutor(2) as pool, pytest.raises(LookupError):
        yardstick.run_textbook(calls, pool)


@pytest.mark.skipif(yardstick.dask_available() is None, reason="dask is not installed (make bench-dask)")
def test_dask_matches_the_serial_reference():
    tasks = plans.random_dag(200, seed=3)
    assert yardstick.dask_get(yardstick.from_tasks(tasks, {"noop": _sum_tool}), 4) == _reference(tasks)


def test_a_run_that_did_not_finish_gives_a_lower_bound_ratio():
    ours = Row("ours", "ms", [10.0, 12.0, 11.0])
    baseline = Row("baseline", "ms", [None, None, 500.0], limit=2.0)
    assert math.isinf(baseline.median)
    ratio = ratio_of("base/ours", baseline, ours)
    assert ratio.lower_bound and ratio.value == pytest.approx(2000.0 / 11.0)
    assert not Target("<=", 1.0, "<= 1 ms").met(baseline.median)
    assert baseline.to_json()["median"] is None and baseline.to_json()["did_not_finish"] == 2


def test_a_line_judges_its_ratio_or_its_own_figure():
    ours, yard = Row("ours", "us", [8.0, 9.0, 10.0]), Row("yard", "us", [10.0, 10.0, 10.0])
    on_ratio = line("x", "us", ratio="ours/yardstick", target=Target("<=", 0.8, "<= 0.8x"), ours=ours, yardstick=yard)
    assert on_ratio.ratio.value == pytest.approx(0.9) and on_ratio.met() is False
    on_ours = line("x", "us", ratio="ours/yardstick", target=Target("<=", 9.5, "<= 9.5"), on_ratio=False,
                   ours=ours, yardstick=yard)
    assert on_ours.met() is True
    assert line("x", "us", ours=ours).met() is None
    with pytest.raises(ValueError, match="unknown columns"):
        line("x", "us", floor=ours)


def test_the_paced_model_notes_when_each_line_ended():
    llm = PacedLLM(['1. search("a")\n2. search("b")\n'], tokens_per_s=1000.0, first_token=0.0)
    text = llm.complete([])
    assert text == '1. search("a")\n2. search("b")\n'
    first, second = llm.line_end('"a")'), llm.line_end('"b")')
    assert first < second
    written = "".join(chunk for at, chunk in llm.emitted if at <= first)
    assert '"a")\n' in written and '"b")' not in written


def test_charts_draw_each_series_and_bar():
    chart = ET.fromstring(line_chart("t", "s", "us", {"ours dicts": [(100, 5.0), (1000, 4.0)],
                                                       "yardstick dicts": [(100, 6.0), (1000, 3.0)]}))
    assert len(chart.findall(f"{SVG}polyline")) == 2 and len(chart.findall(f"{SVG}circle")) == 4
    bars = ET.fromstring(bar_chart("t", "s", "ms", {"a": {"ours": 1.0, "baseline": 900.0},
                                                    "b": {"ours": 2.0, "baseline": None}}))
    texts = [node.text for node in bars.iter(f"{SVG}text")]
    assert "900^" in texts and "DNF" in texts    # the cut bar shows its value; a DNF is named
    with pytest.raises(ValueError):
        bar_chart("t", "s", "ms", {"a": {"ours": None}})


def test_the_guarded_workloads_run_once_the_engine_takes_their_options(monkeypatch):
    """Until the engine has ``cache=`` and ``priority=``, stand-ins that accept and ignore them let
    the two workloads' own code run; once it has them, the --tiny run above covers them."""
    import inspect

    from llmcompiler import Engine, ToolRegistry

    from benchmarks import endtoend
    from benchmarks.harness import Config

    if "cache" not in inspect.signature(ToolRegistry.register).parameters:
        register = ToolRegistry.register
        monkeypatch.setattr(ToolRegistry, "register",
                            lambda self, f, *, cache=False, **options: register(self, f, **options))
    if "priority" not in inspect.signature(Engine.__init__).parameters:
        init = Engine.__init__
        monkeypatch.setattr(Engine, "__init__",
                            lambda self, tools, *, priority="count", **options: init(self, tools, **options))
    config = Config(quick=True, tiny=True, reps=1)
    cache, order = endtoend.replan_cache(config), endtoend.priority(config)
    assert not cache.skipped and not order.skipped
    assert [row.variant for row in cache.rows] == ["cache=True: time to answer", "no cache: time to answer",
                                                   "cache=True: calls answered from the cache"]
    assert all(row.finished for row in cache.rows + order.rows)
    assert {item.what for item in order.lines} == {"makespan, time vs count"}
