"""The ``cpu`` backend: amk's decode GEMV as a C++ kernel (cpu_gemv.cpp) built through a torch extension.

The kernel is compiled once per machine (``-O3 -march=native``, every code-shaping knob instantiated in
that one build) and cached under amk's cache dir; each measurement checks the outputs against torch at
the dtype's tolerance, then times the decode step (median of repeats after warm-up, with the IQR). The
floor is the step's weight bytes over this machine's memory bandwidth, measured once with a STREAM-like
read and cached.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from amk.backends.cache_dir import (
    MEASUREMENT_SUFFIX,
    cache_dir,
    cpu_model_name,
    machine_fingerprint,
    read_cached,
    write_cached,
)
from amk.backends.gemv_backend import GemvBackend, Launch
from amk.backends.gemv_step import PreparedStep
from amk.core.devices import Device
from amk.core.errors import BackendError
from amk.core.markers import hookimpl
from amk.core.space import Knob, SearchSpace
from amk.core.workload import Workload

SOURCE = Path(__file__).with_name("cpu_gemv.cpp")
BANDWIDTH_CACHE = "cpu" + MEASUREMENT_SUFFIX
# Reads per thread count; the best is kept, so more reads mean more chances of a quiet memory bus.
BANDWIDTH_REPEATS = 20
# Concurrent sequential streams per reading thread: one, and as many as the widest GEMV config reads rows.
READ_STREAMS = (1, 8)

# Code-shaping knobs: must match kCols / kUnrolls in cpu_gemv.cpp (checked against the build on load).
COLS_PER_THREAD = (1, 2, 4, 8)
K_UNROLLS = (1, 2, 4)
PREFETCH_LINES = (0, 8, 16, 32)  # software prefetch distance in 64-byte lines (0: hardware prefetch only)
N_TILES = (16, 64, 256)  # rows one thread takes at a time
DEFAULT_N_TILE = 64


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def thread_choices(cpus: int | None = None) -> tuple[int, ...]:
    """Powers of two below the CPU count, and the CPU count itself."""
    cpus = cpus or cpu_count()
    choices = {cpus}
    t = 1
    while t < cpus:
        choices.add(t)
        t *= 2
    return tuple(sorted(choices))


def last_level_cache_bytes() -> int:
    """The largest CPU cache's size (32 MiB when the OS does not say)."""
    sizes = []
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        match = re.fullmatch(r"(\d+)([KMG]?)", text)
        if match:
            sizes.append(int(match[1]) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match[2]])
    return max(sizes, default=32 << 20)


def _extension_name() -> str:
    import torch

    source_hash = __import__("hashlib").sha256(SOURCE.read_bytes()).hexdigest()[:8]
    torch_tag = re.sub(r"[^0-9a-zA-Z]", "_", torch.__version__)
    return f"amk_cpu_gemv_{machine_fingerprint()}_{source_hash}_{torch_tag}"


@functools.cache
def load_extension() -> Any:
    """The compiled kernel module: built on first use on this machine, then loaded from the cache."""
    from torch.utils.cpp_extension import load

    name = _extension_name()
    build_dir = cache_dir() / "cpu" / name
    build_dir.mkdir(parents=True, exist_ok=True)
    try:
        module = load(
            name=name, sources=[str(SOURCE)], build_directory=str(build_dir),
            extra_cflags=["-O3", "-march=native", "-fopenmp", "-std=c++17"], extra_ldflags=["-fopenmp"],
            verbose=False,
        )
    except Exception as exc:  # a compiler error is an environment problem, reported in one sentence
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackendError(
            f"building the cpu GEMV kernel in {build_dir} failed ({first}); run `amk doctor` to check the "
            "C++ compiler and ninja."
        ) from exc
    if tuple(module.compiled_cols()) != COLS_PER_THREAD or tuple(module.compiled_unrolls()) != K_UNROLLS:
        raise BackendError(f"the cpu kernel build in {build_dir} does not match cpu.py's knob choices; delete it.")
    return module


def measure_bandwidth_gbps(refresh: bool = False, buffer_mb: int | None = None) -> float:
    """This machine's memory read bandwidth in GB/s: best of repeated reads of a buffer far larger than
    the last-level cache, over every thread count and 1 or 8 streams per thread; measured once per
    machine and cached.

    ``refresh`` measures again and keeps the better of the two: bandwidth is a physical limit, so the
    best reading seen is the closest to it (a reading taken while other work shared the memory bus is
    low). ``amk doctor --remeasure`` forgets the cache instead."""
    key = machine_fingerprint()
    cached = read_cached(BANDWIDTH_CACHE).get(key)
    if cached and not refresh:
        return float(cached["gbps"])
    import torch

    ext = load_extension()
    n_bytes = max(256 << 20, 8 * last_level_cache_bytes()) if buffer_mb is None else buffer_mb << 20
    buffer = torch.ones(n_bytes // 4, dtype=torch.float32)
    per_threads: dict[int, float] = {}
    for threads in thread_choices():
        ext.read_sum(buffer, threads, 1)  # warm-up: page faults, thread start
        best = min(_timed(lambda t=threads, s=streams: ext.read_sum(buffer, t, s))
                   for streams in READ_STREAMS for _ in range(BANDWIDTH_REPEATS))
        per_threads[threads] = buffer.numel() * 4 / best / 1e9
    gbps = max(per_threads.values())
    if cached and float(cached["gbps"]) > gbps:
        return float(cached["gbps"])
    data = read_cached(BANDWIDTH_CACHE)
    data[key] = {"gbps": gbps, "per_threads": {str(k): v for k, v in per_threads.items()},
                 "buffer_bytes": buffer.numel() * 4, "cpu": cpu_model_name(), "measured_at": time.time()}
    write_cached(BANDWIDTH_CACHE, data)
    return gbps


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def local_cpu_device(bandwidth_gbps: float | None = None) -> Device:
    """This machine's CPU as a Device (``cpu-<model>``), with its measured bandwidth when given."""
    slug = "-".join(w for w in re.split(r"[^a-z0-9]+", cpu_model_name().lower()) if w and w not in
                    {"processor", "cpu", "r", "tm", "with", "radeon", "graphics"})[:40] or "unknown"
    memory_gb = None
    try:
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1) or None
    except (ValueError, OSError, AttributeError):
        pass
    return Device(f"cpu-{slug}", arch=platform.machine() or None, mem_bandwidth_gbps=bandwidth_gbps,
                  memory_gb=memory_gb)


class CpuBackend(GemvBackend):
    """Times the decode step's GEMVs on this machine's CPU with a compiled, knob-parameterised kernel."""

    name = "cpu"
    version = "1"
    torch_device = "cpu"
    measures = "this machine's CPU"
    kernel_error = "the kernel raised"
    floor_digits = 1
    below_floor_note = " (a timing artifact, or the bandwidth measurement is stale: `amk doctor --remeasure`)"

    @attrs.frozen
    class Options:
        warmup: int = 3  # untimed runs before the timed ones
        repeats: int = 15  # timed runs; the latency is their median
        memory_budget_mb: int = 1024  # weights of the timed step (and its cache-flushing replicas) fit this
        cold_cache: bool = True  # rotate weight replicas so each timed step reads memory, not the cache
        floor_tolerance: float = 0.05  # a latency this far below the floor is rejected as an artifact
        seed: int = 0

    # -- what can run here -------------------------------------------------------------------------
    def _availability_with(self, torch: Any) -> tuple[bool, str]:
        compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
        if not compiler:
            return False, "no C++ compiler on PATH (c++/g++) to build the kernel"
        if shutil.which("ninja") is None:
            try:
                import ninja  # noqa: F401  (the pip package puts ninja on PATH only inside its venv)
            except ImportError:
                return False, "ninja is not installed (torch extensions build with it): pip install ninja"
        return True, f"torch {torch.__version__}, {Path(compiler).name}; kernel cached under {cache_dir() / 'cpu'}"

    def measured_bandwidth_gbps(self) -> float:
        """This machine's memory read bandwidth (a STREAM-like read, measured once and cached)."""
        return measure_bandwidth_gbps()

    def local_device(self) -> Device:
        """This machine's CPU, with its measured memory bandwidth (measured once, cached)."""
        return local_cpu_device(measure_bandwidth_gbps())

    def _device_here(self) -> Device:
        return local_cpu_device()

    # -- the search space --------------------------------------------------------------------------
    def search_space(self, workload: Workload, device: Device) -> SearchSpace:
        self._check_device(device)
        self.plan(workload)  # refuses a non-decode workload
        threads = thread_choices()
        knobs = (
            Knob("cols_per_thread", COLS_PER_THREAD, default=4),
            Knob("k_unroll", K_UNROLLS, default=2),
            Knob("prefetch_lines", PREFETCH_LINES, default=0),
            Knob("threads", threads, default=threads[-1]),
            Knob("n_tile", N_TILES, default=DEFAULT_N_TILE),
        )
        return SearchSpace(
            knobs,
            constraints=(lambda c: c["n_tile"] % c["cols_per_thread"] == 0,),
            constraint_texts=("n_tile is a multiple of cols_per_thread",),
            canonicalize=_canonical_cpu_config,
        )

    # -- the floor ---------------------------------------------------------------------------------
    def floor_us(self, workload: Workload, device: Device) -> float | None:
        """The planned step's weight bytes over this machine's measured memory bandwidth."""
        return self.plan(workload).floor_us(measure_bandwidth_gbps())

    def _floor_tolerance(self) -> float:
        return self.options.floor_tolerance

    def _recheck_floor(self, prepared: PreparedStep, median_us: float, floor_us: float) -> float:
        if median_us < floor_us * (1 - self.options.floor_tolerance):
            # Faster than the cached bandwidth allows: that reading may have been taken on a busy machine.
            # Measure again (the better reading is kept) before calling the latency an artifact.
            return prepared.plan.floor_us(measure_bandwidth_gbps(refresh=True))
        return floor_us

    # -- measuring ---------------------------------------------------------------------------------
    def _cache_bytes(self) -> int:
        return last_level_cache_bytes()

    def _launcher(self, knobs: Mapping[str, Any]) -> Launch:
        ext = load_extension()  # one build for every config: a failure raises BackendError (run `amk doctor`)
        args = (int(knobs["cols_per_thread"]), int(knobs["k_unroll"]), int(knobs["prefetch_lines"]),
                int(knobs["threads"]), int(knobs["n_tile"]))

        def launch(prepared: PreparedStep, replica: int) -> None:
            ext.gemv_step(prepared.replicas[replica], prepared.xs, prepared.ys, *args)

        return launch

    def _time_step(self, prepared: PreparedStep, run: Callable[[int], None]) -> list[float]:
        """Wall-clock seconds of each timed run (``time.perf_counter`` around one step)."""
        n_replicas = len(prepared.replicas)
        for i in range(self.options.warmup):
            run((i + 1) % n_replicas)
        samples = []
        for i in range(self.options.repeats):
            replica = (self.options.warmup + 1 + i) % n_replicas
            start = time.perf_counter()
            run(replica)
            samples.append(time.perf_counter() - start)
        return samples


def _canonical_cpu_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """With one thread the N tile only reorders the rows that thread walks: one kernel, one measurement."""
    canonical = dict(config)
    if canonical.get("threads") == 1:
        canonical["n_tile"] = DEFAULT_N_TILE
    return canonical


@hookimpl
def register_backends(register) -> None:
    register(CpuBackend)
