"""What AmkStrategy costs per evaluation as the search space and the corpus grow, beside Kernel Tuner's
``random_sample`` in the same run (its cost is Kernel Tuner's own per evaluation).

Two synthetic Kernel Tuner caches of one kernel (six knobs; ``--choices`` sets the size: 6 -> 10,368 configs,
8 -> 32,768) on two devices whose latencies are the same smooth function scaled (device B 1.3x slower, 2%
noise): A's cache is imported into a fresh SQLite corpus, B's is replayed by ``kernel_tuner.tune_cache``
for ``--budget`` evaluations with each strategy. It prints each strategy's wall seconds, seconds per
evaluation, the best latency found over B's optimum, and amk's cost over random_sample's. The latencies are
synthetic and replayed, not measured; the wall times are measured here (say the load beside them).

    nice python bench/kernel_tuner_overhead.py [--choices 6 8] [--budget 100]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def write_cache(path: Path, device_name: str, slowdown: float, n_choices: int) -> float:
    """A cache of every config of the six-knob space; returns its optimum (ms)."""
    params = {"bx": [2 ** i for i in range(n_choices)], "by": [2 ** i for i in range(n_choices)],
              "tx": list(range(1, n_choices + 1)), "ty": list(range(1, n_choices + 1)), "u": [0, 1, 2, 4],
              "s": [0, 1]}
    noise = random.Random(device_name)
    cache = {}
    for values in itertools.product(*params.values()):
        c = dict(zip(params, values))
        t = slowdown * (1 + abs(math.log2(c["bx"] * c["by"]) - 6) + 0.3 * abs(c["tx"] - 3) + 0.2 * abs(c["ty"] - 2)
                        + (0.1 if c["u"] else 0.3) + 0.05 * c["s"]) * (1 + 0.02 * noise.random())
        cache[",".join(map(str, values))] = {**c, "time": t, "times": [t] * 3, "compile_time": 10.0,
                                             "verification_time": 0, "benchmark_time": 1.0, "strategy_time": 0,
                                             "framework_time": 0, "timestamp": "2024-01-01 00:00:00+00:00"}
    path.write_text(json.dumps({"device_name": device_name, "kernel_name": "overhead", "problem_size": [4096, 4096],
                                "tune_params_keys": list(params), "tune_params": params, "objective": "time",
                                "cache": cache}))
    return min(e["time"] for e in cache.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--choices", type=int, nargs="+", default=[6, 8])
    parser.add_argument("--budget", type=int, default=100)
    args = parser.parse_args()

    import kernel_tuner

    from amk.core.config import open_store
    from amk.formats import read_file
    from amk.integrations.kernel_tuner import AmkStrategy

    print(f"{'configs':>8} {'strategy':>14} {'wall s':>8} {'s/eval':>8} {'best/opt':>9}")
    for n in args.choices:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            write_cache(folder / "A.json", "NVIDIA A100-PCIE-40GB", 1.0, n)
            optimum = write_cache(folder / "B.json", "NVIDIA RTX A6000", 1.3, n)
            url = f"sqlite:{folder / 'corpus.db'}"
            with open_store(url) as store:
                store.append([item.record for item in read_file(folder / "A.json") if item.record is not None])
                size = store.count()
            walls = {}
            for name, strategy in (("random_sample", "random_sample"), ("amk", AmkStrategy(store=url, seed=0))):
                started = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    results, _env = kernel_tuner.tune_cache(str(folder / "B.json"), strategy=strategy,
                                                            strategy_options={"max_fevals": args.budget}, quiet=True)
                walls[name] = time.perf_counter() - started
                best = min(r["time"] for r in results if isinstance(r.get("time"), float))
                print(f"{size:>8} {name:>14} {walls[name]:>8.1f} {walls[name] / len(results):>8.3f} "
                      f"{best / optimum:>9.3f}")
            print(f"{size:>8} {'amk / random':>14} {walls['amk'] / walls['random_sample']:>8.1f}x")


if __name__ == "__main__":
    main()
