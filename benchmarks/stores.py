"""Workload 10: what one observation costs to write and read back, LocalStore vs ManagerStore."""

from __future__ import annotations

import time
from typing import Any, Dict

from llmcompiler.executors import default_start_method, process_context
from llmcompiler.store import LocalStore, ManagerStore, ObservationStore

from .harness import BenchmarkError, Config, Row, Variant, Workload, alternate, ratio_of, scaled

__all__ = ["store_cost"]

SMALL = "Tokyo: 14.09 million people (2023 estimate)"
LARGE = b"\x00" * (1 << 20)


def _pairs(store: ObservationStore, value: Any, pairs: int) -> Dict[str, float]:
    """Seconds per ``set`` + ``get`` of ``value``, averaged over ``pairs`` distinct keys."""
    start = time.perf_counter()
    for idx in range(1, pairs + 1):
        store.set(idx, value)
        store.get(idx)
    elapsed = time.perf_counter() - start
    if len(store.get(pairs)) != len(value):
        raise BenchmarkError(f"{type(store).__name__} returned a different value than was written")
    store.clear()
    return {"pair": elapsed / pairs}


def store_cost(config: Config) -> Workload:
    """10. Write + read of a small and of a 1 MB observation, per pair, in each store."""
    counts = {("local", "small"): config.pick(5_000, 500), ("manager", "small"): config.pick(500, 50),
              ("local", "large"): config.pick(1_000, 100), ("manager", "large"): config.pick(20, 4)}
    workload = Workload("store", "set + get of one observation: LocalStore vs ManagerStore",
                        {"small_bytes": len(SMALL), "large_bytes": len(LARGE),
                         "pairs_per_sample": {f"{s}/{v}": n for (s, v), n in counts.items()}})
    started = time.perf_counter()
    manager = ManagerStore(process_context(default_start_method()))
    startup = time.perf_counter() - started
    try:
        stores = {"local": LocalStore(), "manager": manager}
        values = {"small": SMALL, "large": LARGE}
        variants = [Variant(f"{store}/{size}",
                            lambda store=store, size=size: _pairs(stores[store], values[size], counts[store, size]))
                    for size in ("small", "large") for store in ("local", "manager")]
        samples = alternate(variants, config.reps)
    finally:
        manager.close()
    rows = []
    for size, label in (("small", f"{len(SMALL)} B str"), ("large", "1 MB bytes")):
        local = Row(f"LocalStore: {label}", "us", scaled(samples[f"local/{size}"]["pair"], "us"))
        remote = Row(f"ManagerStore: {label}", "us", scaled(samples[f"manager/{size}"]["pair"], "us"))
        remote.ratio = ratio_of("mgr/local", remote, local)
        rows += [local, remote]
    rows.append(Row("ManagerStore: start-up", "ms", [startup * 1e3], note="its manager process"))
    workload.rows = rows
    return workload
