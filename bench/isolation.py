"""Benchmark: what measuring in a worker process costs per measurement, against the in-process thread.

For each backend (replay on a Kernel Tuner cache; cpu on a 1B-class decode layer when torch and a compiler
are here), in the same run:
  1. start a worker (``[tune] isolation = "process"``) and time its first measurement: interpreter start,
     imports, the backend rebuilt, its first-use work (cpu: torch import, the cached kernel's load, the
     prepared weights); this is also what each CRASH or TIMEOUT costs, since a fresh worker follows it;
  2. measure each config in the thread mode and in the warm worker back to back (the order alternating);
  3. print the median per-measurement time of each mode, and the median over the pairs of the difference
     (the per-measurement overhead) and of the ratio process / thread.

    nice python bench/isolation.py [--cache ../shared/data/kernel_tuner/convolution/A100.json.gz]
                                   [--replay-n 400] [--cpu-n 20] [--rounds 5] [--no-cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from amk.core.backend import Backend
from amk.core.plugins import get_registry  # noqa: E402
from amk.core.records import Verdict  # noqa: E402
from amk.decode.workload import decode_workload
from amk.tuning.isolation import make_measurer  # noqa: E402

DEFAULT_CACHE = REPO.parent / "shared" / "data" / "kernel_tuner" / "convolution" / "A100.json.gz"


def _timed(measurer, workload, device, config) -> float:
    """Seconds of one measurement, which must PASS (a failure would time something else)."""
    start = time.perf_counter()
    m = measurer.measure(workload, device, config, 600.0)
    elapsed = time.perf_counter() - start
    if m.verdict is not Verdict.PASS:
        raise SystemExit(f"{config}: {m.verdict.value} {m.reason}")
    return elapsed


def compare(label: str, backend, workload, device, configs, rounds: int) -> dict[str, float]:
    """Each config measured in both modes back to back (the order alternating), ``rounds`` times."""
    thread = make_measurer(backend, "thread")
    process = make_measurer(backend, "process")
    try:
        start = time.perf_counter()
        _timed(process, workload, device, configs[0])
        first = time.perf_counter() - start
        _timed(thread, workload, device, configs[0])  # the thread mode's own first-use work, untimed
        pairs = []
        for r in range(rounds):
            for i, config in enumerate(configs):
                if (r + i) % 2 == 0:
                    t = _timed(thread, workload, device, config)
                    p = _timed(process, workload, device, config)
                else:
                    p = _timed(process, workload, device, config)
                    t = _timed(thread, workload, device, config)
                pairs.append((t, p))
        assert process.starts == 1, "the worker restarted during the benchmark"
    finally:
        process.close()
    t = statistics.median(x for x, _ in pairs)
    p = statistics.median(y for _, y in pairs)
    diff = statistics.median(y - x for x, y in pairs)
    ratio = statistics.median(y / x for x, y in pairs)
    print(f"{label}: {len(configs)} configs x {rounds} rounds, each measured in both modes back to back")
    print(f"  first measurement in a fresh worker (start + first use): {first * 1e3:9.1f} ms")
    print(f"  per measurement, thread  (median):                      {t * 1e3:9.3f} ms")
    print(f"  per measurement, process (median):                      {p * 1e3:9.3f} ms")
    print(f"  process - thread, median of the pairs: {diff * 1e3:+.3f} ms; process / thread, median of the pairs: "
          f"{ratio:.3f}x")
    return {"first_ms": first * 1e3, "thread_ms": t * 1e3, "process_ms": p * 1e3, "diff_ms": diff * 1e3}


def bench_replay(cache: Path, n: int, rounds: int) -> None:
    from amk.backends.replay import ReplayBackend
    from amk.formats.kernel_tuner import read_kernel_tuner

    backend = get_registry().create(Backend, "replay", ReplayBackend.Options(cache=str(cache)))
    record = next(item.record for item in read_kernel_tuner(cache) if item.record is not None)
    workload, device = record.workload, record.device
    passing = [c for c in backend.search_space(workload, device)
               if backend.measure(workload, device, c).verdict is Verdict.PASS]
    compare(f"replay ({cache.name}, {workload.name})", backend, workload, device, passing[:n], rounds)


def bench_cpu(n: int, rounds: int) -> None:
    from amk.backends.cpu import CpuBackend
    from amk.decode.shapes import ModelShape

    backend = get_registry().create(Backend, "cpu", CpuBackend.Options(memory_budget_mb=256))
    available, why = backend.availability()
    if not available:
        print(f"cpu: skipped ({why})")
        return
    device = backend.local_device()
    shape = ModelShape(hidden=2048, n_layers=16, n_heads=32, n_kv_heads=8, head_dim=64, intermediate=8192,
                       vocab=128256)
    workload = decode_workload("1b-class", shape, dtype="bf16")
    configs = list(backend.search_space(workload, device))
    step = max(1, len(configs) // n)
    compare(f"cpu ({device.name}, {workload.name} bf16, default repeats)", backend, workload, device,
            configs[::step][:n], rounds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--replay-n", type=int, default=400)
    parser.add_argument("--cpu-n", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-cpu", action="store_true")
    args = parser.parse_args()
    if not args.cache.is_file():
        raise SystemExit(f"no Kernel Tuner cache at {args.cache}; pass one with --cache")
    bench_replay(args.cache, args.replay_n, args.rounds)
    if not args.no_cpu:
        bench_cpu(args.cpu_n, args.rounds)


if __name__ == "__main__":
    main()
