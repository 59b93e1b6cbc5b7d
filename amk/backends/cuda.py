"""The ``cuda`` backend: amk's decode GEMV kernels (gemv_cuda.cuh) on an NVIDIA GPU, with the seed's knobs.

Knobs: ``cols_per_warp`` (register path), ``cpasync`` / ``cpa_stages`` / ``cpa_cols`` (the cp.async ring),
``threads_per_block`` and ``gemv_n_tile`` rows per block: the names of the roofline backend, and records
store them in amk's ScheduleConfig layout (``record_config``), so the two backends' records read alike.
Each DISTINCT kernel (the search space's canonical config, less the run-time ``gemv_n_tile``) is built once through torch.utils.cpp_extension with ``-gencode``
for the live device and cached on disk; the step is captured in a CUDA graph and timed with CUDA events;
outputs are checked against torch; a latency below the floor (weight bytes / the device's bandwidth) is
rejected as an artifact.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import math
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from amk.backends.cache_dir import MEASUREMENT_SUFFIX, cache_dir, read_cached, write_cached
from amk.backends.gemv_backend import GemvBackend, KernelCrash, Launch
from amk.backends.gemv_step import PreparedStep
from amk.core.devices import KNOWN_DEVICES, Device, resolve_device
from amk.core.errors import BackendError
from amk.core.markers import hookimpl
from amk.core.records import Measurement
from amk.core.space import Knob, SearchSpace
from amk.core.workload import Workload
from amk.decode.knobs import knobs_of_schedule, schedule_of_knobs
from amk.decode.schedule import SEARCHABLE_KNOB_CHOICES, SEARCHABLE_KNOB_DEFAULTS

HERE = Path(__file__).parent
KERNEL_HEADER = HERE / "gemv_cuda.cuh"
KERNEL_LIBRARY_SOURCE = HERE / "gemv_cuda.cu"
BANDWIDTH_CACHE = "cuda" + MEASUREMENT_SUFFIX

THREADS_PER_BLOCK = (128, 256, 512)
N_TILES = (8, 16, 32, 64, 128, 256)
DEFAULT_THREADS = 256
DEFAULT_N_TILE = 32
DTYPE_CODES = {"fp32": 0, "fp16": 1, "bf16": 2}
# Compile-time knobs, in the order of the kernel templates; gemv_n_tile is a run-time argument.
BUILD_KNOBS = ("cpasync", "cols_per_warp", "cpa_stages", "cpa_cols", "threads_per_block")
KNOB_NAMES = (*SEARCHABLE_KNOB_CHOICES, "threads_per_block", "gemv_n_tile")
DEFAULT_SMEM_LIMIT = 48 * 1024
# Each replica is captured in its own CUDA graph; past this many, a tiny step is launch-bound anyway.
MAX_REPLICAS = 16  # what every CUDA device gives a block without opting in


def cpasync_smem_bytes(config: Mapping[str, Any]) -> int:
    """Shared memory a cp.async kernel's block uses: a ring per warp (mirrors cpasync_smem_bytes())."""
    if not config["cpasync"]:
        return 0
    return config["threads_per_block"] // 32 * config["cpa_stages"] * config["cpa_cols"] * 32 * 16


def canonical_cuda_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The representative of the configs that build the same kernel: the other family's knobs take
    their defaults (cols_per_warp does nothing under cp.async; cpa_* do nothing on the register path)."""
    canonical = dict(config)
    if canonical.get("cpasync"):
        canonical["cols_per_warp"] = SEARCHABLE_KNOB_DEFAULTS["cols_per_warp"]
    else:
        canonical["cpa_stages"] = SEARCHABLE_KNOB_DEFAULTS["cpa_stages"]
        canonical["cpa_cols"] = SEARCHABLE_KNOB_DEFAULTS["cpa_cols"]
    return canonical


def kernel_variant(config: Mapping[str, Any]) -> tuple[int, ...]:
    """The compile-time identity of a config's kernel: its canonical build knobs, in BUILD_KNOBS order."""
    canonical = canonical_cuda_config(config)
    return tuple(int(canonical[k]) for k in BUILD_KNOBS)


def cuda_search_space(device: Device | None = None) -> SearchSpace:
    """The knobs and constraints of the GEMV on ``device`` (cp.async needs sm_80; the ring must fit the
    device's shared memory per block, or the 48 KiB every device has when the device is unknown)."""
    cc = device.compute_capability if device else None
    smem_limit = (device.smem_per_block_bytes if device else None) or DEFAULT_SMEM_LIMIT
    knobs = [Knob(name, choices, default=SEARCHABLE_KNOB_DEFAULTS[name])
             for name, choices in SEARCHABLE_KNOB_CHOICES.items()]
    knobs += [Knob("threads_per_block", THREADS_PER_BLOCK, default=DEFAULT_THREADS),
              Knob("gemv_n_tile", N_TILES, default=DEFAULT_N_TILE)]
    constraints = [lambda c: cpasync_smem_bytes(c) <= smem_limit]
    texts = [f"the cp.async ring (threads_per_block/32 * cpa_stages * cpa_cols * 512 bytes) fits {smem_limit} bytes"]
    if cc is not None and cc < 80:
        constraints.append(lambda c: not c["cpasync"])
        texts.append(f"cpasync=0 on {device.name} ({device.arch}): cp.async needs sm_80 or newer")
    return SearchSpace(knobs, constraints=constraints, constraint_texts=texts, canonicalize=canonical_cuda_config)


def distinct_kernel_variants(device: Device | None = None) -> list[tuple[int, ...]]:
    """Every distinct kernel the search space can build (what CI compiles for each architecture)."""
    return sorted({kernel_variant(c) for c in cuda_search_space(device)})


def _nvcc() -> str | None:
    from torch.utils import cpp_extension

    home = cpp_extension.CUDA_HOME
    if home and (Path(home) / "bin" / "nvcc").exists():
        return str(Path(home) / "bin" / "nvcc")
    return shutil.which("nvcc")


def _source_hash() -> str:
    digest = hashlib.sha256(KERNEL_HEADER.read_bytes() + KERNEL_LIBRARY_SOURCE.read_bytes())
    return digest.hexdigest()[:8]


class KernelLibrary:
    """One built variant: a ctypes handle on its ``amk_gemv_launch`` entry point."""

    def __init__(self, path: str, variant: tuple[int, ...]) -> None:
        self.path = path
        self.variant = variant
        lib = ctypes.CDLL(path)
        self._launch = lib.amk_gemv_launch
        self._launch.restype = ctypes.c_int
        self._launch.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_longlong, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_void_p]
        self._error_string = lib.amk_gemv_error_string
        self._error_string.restype = ctypes.c_char_p
        built = (ctypes.c_int * 5)()
        lib.amk_gemv_variant(built)
        if tuple(built) != variant:
            raise BackendError(f"the kernel library {path} holds variant {tuple(built)}, not {variant}; delete it.")

    def launch(self, dtype: str, w: Any, x: Any, y: Any, n_tile: int, stream: int) -> None:
        code = self._launch(DTYPE_CODES[dtype], w.data_ptr(), x.data_ptr(), y.data_ptr(), w.shape[0], w.shape[1],
                            n_tile, stream)
        if code:
            raise RuntimeError(f"launch failed: {self._error_string(code).decode()}")


@functools.cache
def build_kernel(variant: tuple[int, ...], capability: tuple[int, int]) -> KernelLibrary:
    """Build (or load from the disk cache) one distinct kernel for a device of ``capability``."""
    from torch.utils.cpp_extension import load

    cc = f"{capability[0]}{capability[1]}"
    tag = "_".join(f"{k}{v}" for k, v in zip(BUILD_KNOBS, variant))
    name = f"amk_cuda_gemv_{tag}_sm{cc}_{_source_hash()}"
    build_dir = cache_dir() / "cuda" / name
    build_dir.mkdir(parents=True, exist_ok=True)
    defines = [f"-DAMK_{k.upper()}={v}" for k, v in zip(BUILD_KNOBS, variant)]
    try:
        path = load(
            name=name, sources=[str(KERNEL_LIBRARY_SOURCE)], build_directory=str(build_dir),
            extra_include_paths=[str(HERE)],
            extra_cuda_cflags=["-O3", "-std=c++17", *defines, f"-gencode=arch=compute_{cc},code=sm_{cc}"],
            is_python_module=False, verbose=False,
        )
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackendError(f"building CUDA GEMV variant {tag} for sm_{cc} failed ({first}); "
                           f"see the build log in {build_dir}.") from exc
    return KernelLibrary(str(path), variant)


def live_device() -> Device:
    """The GPU torch sees (device 0): the registry's specs when it knows the model, else what torch reports."""
    import torch

    props = torch.cuda.get_device_properties(0)
    known = resolve_device(props.name)
    cc = f"sm_{props.major}{props.minor}"
    if known.name in KNOWN_DEVICES:
        return known
    return Device(known.name, arch=cc, sm_count=props.multi_processor_count,
                  mem_bandwidth_gbps=measure_bandwidth_gbps(),
                  memory_gb=round(props.total_memory / 1e9, 1))


def measure_bandwidth_gbps(refresh: bool = False) -> float:
    """The live GPU's memory bandwidth in GB/s: the best of a device-to-device copy (read + write) and a
    read-only reduction over 1 GiB, timed with CUDA events; measured once per GPU model and cached."""
    import torch

    key = f"{torch.cuda.get_device_name(0)}|{torch.cuda.get_device_capability(0)}"
    cached = read_cached(BANDWIDTH_CACHE).get(key)
    if cached and not refresh:
        return float(cached["gbps"])
    n_bytes = 1 << 30
    a = torch.empty(n_bytes // 2, dtype=torch.bfloat16, device="cuda").uniform_()
    b = torch.empty_like(a)
    copy_gbps = 2 * n_bytes / _best_event_time(lambda: b.copy_(a)) / 1e9
    read_gbps = n_bytes / _best_event_time(lambda: a.sum(dtype=torch.float32)) / 1e9
    gbps = max(copy_gbps, read_gbps)
    data = read_cached(BANDWIDTH_CACHE)
    data[key] = {"gbps": gbps, "copy_gbps": copy_gbps, "read_gbps": read_gbps}
    write_cached(BANDWIDTH_CACHE, data)
    return gbps


def _best_event_time(fn, repeats: int = 10) -> float:
    import torch

    fn()
    best = math.inf
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3)
    return best


class CudaBackend(GemvBackend):
    """Times the decode step's GEMVs on the live NVIDIA GPU, one built kernel per distinct knob set."""

    name = "cuda"
    version = "1"
    torch_device = "cuda"
    measures = "the live GPU"
    max_replicas = MAX_REPLICAS
    kernel_error = "the kernel failed"
    floor_digits = 2
    below_floor_note = ": a timing artifact (e.g. weights served from L2), not a result"

    @attrs.frozen
    class Options:
        warmup: int = 5  # untimed graph replays
        repeats: int = 30  # timed graph replays; the latency is their median
        memory_budget_mb: int = 8192  # GPU memory for the step's weights and their L2-flushing replicas
        cold_cache: bool = True  # rotate weight replicas so each step reads HBM, not L2
        seed: int = 0

    def _availability_with(self, torch: Any) -> tuple[bool, str]:
        if torch.version.cuda is None:
            return False, f"torch {torch.__version__} is a CPU-only build (install a CUDA build of torch)"
        if not torch.cuda.is_available():
            return False, f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU"
        nvcc = _nvcc()
        if nvcc is None:
            return False, "no nvcc (set CUDA_HOME or put nvcc on PATH) to build the kernels"
        major, minor = torch.cuda.get_device_capability(0)
        return True, (f"{torch.cuda.get_device_name(0)} (sm_{major}{minor}), torch {torch.__version__} "
                      f"CUDA {torch.version.cuda}, nvcc {nvcc}; kernels cached under {cache_dir() / 'cuda'}")

    def measured_bandwidth_gbps(self) -> float:
        """The live GPU's memory bandwidth, measured once (copy and read) and cached."""
        self._require_gpu()
        return measure_bandwidth_gbps()

    def local_device(self) -> Device:
        """The GPU this process measures on."""
        self._require_gpu()
        return live_device()

    def _device_here(self) -> Device:
        return live_device()

    def _require_gpu(self) -> None:
        ok, why = self.availability()
        if not ok:
            raise BackendError(f"the cuda backend cannot run here: {why}; run `amk doctor` for details.")

    def search_space(self, workload: Workload, device: Device) -> SearchSpace:
        self.plan(workload)  # refuses a non-decode workload
        return cuda_search_space(device)

    def record_config(self, workload: Workload, knobs: Mapping[str, Any]) -> dict[str, Any]:
        return schedule_of_knobs(knobs)

    def knob_config(self, workload: Workload, config: Mapping[str, Any]) -> dict[str, Any]:
        return knobs_of_schedule(config, KNOB_NAMES, DEFAULT_N_TILE)

    def floor_us(self, workload: Workload, device: Device) -> float | None:
        """The planned step's weight bytes over the device's bandwidth (its spec, else measured here)."""
        bandwidth = device.mem_bandwidth_gbps
        if bandwidth is None:
            self._require_gpu()
            bandwidth = measure_bandwidth_gbps()
        return self.plan(workload).floor_us(bandwidth)

    def measure(self, workload: Workload, device: Device, config: Mapping[str, Any]) -> Measurement:
        """As ``GemvBackend.measure``; raises BackendError first when no usable GPU is here."""
        self._require_gpu()
        return super().measure(workload, device, config)

    def _checked_knobs(self, workload: Workload, device: Device, config: Mapping[str, Any]) -> dict[str, Any]:
        self._check_device(device)
        knobs = self.knob_config(workload, config)
        self.validate(workload, device, knobs)
        self._check_k(workload)
        return knobs

    def _check_k(self, workload: Workload) -> None:
        plan = self.plan(workload)
        per_vec = 16 // {"fp32": 4, "fp16": 2, "bf16": 2}[plan.dtype]
        odd = [p.name for p in plan.projections if p.k % per_vec]
        if odd:
            raise BackendError(f"projections {odd} of {workload.name!r} have K not a multiple of {per_vec}, "
                               "which the 16-byte vector loads of the cuda GEMV need.")

    def _cache_bytes(self) -> int:
        import torch

        return getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 50 << 20) or (50 << 20)

    def _release_memory(self) -> None:
        import torch

        torch.cuda.empty_cache()

    def _launcher(self, knobs: Mapping[str, Any]) -> Launch:
        """The distinct kernel of ``knobs``, built for the live GPU; each config's build can fail on its own."""
        import torch

        try:
            library = build_kernel(kernel_variant(knobs), torch.cuda.get_device_capability(0))
        except BackendError as exc:
            raise KernelCrash(str(exc)) from exc
        n_tile = int(knobs["gemv_n_tile"])

        def launch(prepared: PreparedStep, replica: int) -> None:
            stream = torch.cuda.current_stream().cuda_stream  # the capture stream inside a graph capture
            for w, x, y in zip(prepared.replicas[replica], prepared.xs, prepared.ys):
                library.launch(prepared.plan.dtype, w, x, y, n_tile, stream)

        return launch

    def _synchronize(self) -> None:
        import torch

        torch.cuda.synchronize()

    def _time_step(self, prepared: PreparedStep, run: Callable[[int], None]) -> list[float]:
        """Seconds of each timed replay of the step captured in a CUDA graph per replica (CUDA events)."""
        return time_graph_replays(capture_step_graphs(prepared, run), self.options.warmup, self.options.repeats)


def capture_step_graphs(prepared: PreparedStep, run) -> list:
    """The step captured once per weight replica in a CUDA graph (no launch overhead between GEMVs);
    timing then rotates over them so each replay reads cold weights."""
    import torch

    graphs = []
    for replica in range(len(prepared.replicas)):
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            run(replica)
        graphs.append(graph)
    return graphs


def time_graph_replays(graphs: list, warmup: int, repeats: int) -> list[float]:
    """Seconds per replay of each timed replay, rotating over ``graphs``; CUDA events around each."""
    import torch

    for i in range(warmup):
        graphs[i % len(graphs)].replay()
    events = []
    for i in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graphs[(warmup + i) % len(graphs)].replay()
        end.record()
        events.append((start, end))
    torch.cuda.synchronize()
    return [start.elapsed_time(end) / 1e3 for start, end in events]


def iter_variant_instantiations(variants: list[tuple[int, ...]]) -> Iterator[str]:
    """Explicit instantiations of ``launch_gemv`` for every variant and dtype: one translation unit that
    compiles every distinct kernel (what CI builds for sm_80 and sm_90)."""
    for cpasync, cols, stages, cpa_cols, threads in variants:
        for ctype in ("float", "__half", "__nv_bfloat16"):
            yield (f"template cudaError_t amk_gemv::launch_gemv<{ctype}, {cpasync}, {cols}, {stages}, {cpa_cols}, "
                   f"{threads}>(const void*, const void*, void*, int, int, int, cudaStream_t);")


@hookimpl
def register_backends(register) -> None:
    register(CudaBackend)
