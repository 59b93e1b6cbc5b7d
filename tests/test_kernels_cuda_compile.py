"""Every distinct CUDA kernel the cuda backend can build, really compiled by nvcc for sm_80 and sm_90
(no GPU needed), and the search space's rules that decide which kernels are distinct."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from amk.backends import cuda as cuda_backend
from amk.backends.cache_dir import kernel_cache_root
from amk.core.devices import KNOWN_DEVICES, Device
from amk.core.errors import InvalidConfigError

NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="needs nvcc (the CUDA toolkit) on PATH to compile the kernels")
ARCHS = ("sm_80", "sm_90")


def _torch_nvcc_flags() -> list[str]:
    """The flags torch.utils.cpp_extension adds to every nvcc call (no implicit half/bf16 conversions...),
    so this compile sees the kernels as the backend's real build does."""
    try:
        from torch.utils.cpp_extension import COMMON_NVCC_FLAGS
    except ImportError:
        return []
    return list(COMMON_NVCC_FLAGS)


def _compile(source: Path, arch: str, out: Path, *defines: str) -> subprocess.CompletedProcess:
    """``nvcc -c`` (host and device code) with warnings as errors and ptxas's per-kernel report.

    Like ccache, a compile whose inputs are byte for byte those of an earlier one (the source, every header
    beside the kernels, the flags, the nvcc version) returns that compile's result: it is kept beside the
    compiled kernels (``$AMK_BUILD_DIR``), so the suite compiles each version of the kernels once."""
    flags = ["-c", f"-arch={arch}", "-O3", "-std=c++17", *_torch_nvcc_flags(), "--Werror", "all-warnings",
             "-Xptxas", "-v", *defines]
    key = _compile_key(source, flags)
    cached = kernel_cache_root() / "nvcc-checks" / f"{key}.json"
    if cached.is_file():
        kept = json.loads(cached.read_text())
        return subprocess.CompletedProcess(["nvcc", *flags], kept["returncode"], kept["stdout"], kept["stderr"])
    cmd = [NVCC, *flags, f"-I{cuda_backend.HERE}", str(source), "-o", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"returncode": result.returncode, "stdout": result.stdout, "stderr": result.stderr}))
    os.replace(tmp, cached)
    return result


def _compile_key(source: Path, flags: list[str]) -> str:
    digest = hashlib.sha256()
    version = subprocess.run([NVCC, "--version"], capture_output=True, text=True, check=False).stdout
    for part in (version, json.dumps(flags), source.read_text()):
        digest.update(part.encode())
    for header in sorted(cuda_backend.HERE.glob("*.cuh")) + sorted(cuda_backend.HERE.glob("*.h")):
        digest.update(header.name.encode() + header.read_bytes())
    return digest.hexdigest()[:24]


@pytest.fixture(scope="module")
def every_variant_compiled(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """One translation unit instantiating every distinct variant in every dtype, compiled per arch in parallel."""
    variants = sorted(set(cuda_backend.distinct_kernel_variants(KNOWN_DEVICES["h100"]))
                      | set(cuda_backend.distinct_kernel_variants(KNOWN_DEVICES["a100"])))
    folder = tmp_path_factory.mktemp("cuda_variants")
    source = folder / "all_variants.cu"
    source.write_text('#include "gemv_cuda.cuh"\n' + "\n".join(cuda_backend.iter_variant_instantiations(variants)) + "\n")
    with ThreadPoolExecutor(len(ARCHS)) as pool:
        results = dict(zip(ARCHS, pool.map(lambda a: _compile(source, a, folder / f"{a}.o"), ARCHS)))
    results["variants"] = variants  # type: ignore[assignment]
    return results


@needs_nvcc
@pytest.mark.parametrize("arch", ARCHS)
def test_every_distinct_kernel_variant_compiles_without_warnings(every_variant_compiled, arch):
    result = every_variant_compiled[arch]
    assert result.returncode == 0, result.stderr[-4000:]
    compiled = re.findall(r"Compiling entry function '(\w+)' for '(\w+)'", result.stderr)
    assert {a for _name, a in compiled} == {arch}
    # one kernel per (variant, dtype): proof each variant was instantiated, not just the file parsed
    assert len({name for name, _a in compiled}) == 3 * len(every_variant_compiled["variants"])


@needs_nvcc
def test_the_per_variant_library_source_compiles_with_a_variants_defines(tmp_path):
    defines = [f"-DAMK_{k.upper()}={v}" for k, v in zip(cuda_backend.BUILD_KNOBS, (1, 1, 3, 4, 512))]
    result = _compile(cuda_backend.KERNEL_LIBRARY_SOURCE, "sm_90", tmp_path / "lib.o", "-Xcompiler", "-fPIC", *defines)
    assert result.returncode == 0, result.stderr[-4000:]


@needs_nvcc
def test_the_library_source_refuses_to_build_without_a_variant(tmp_path):
    result = _compile(cuda_backend.KERNEL_LIBRARY_SOURCE, "sm_90", tmp_path / "lib.o")
    assert result.returncode != 0 and "define AMK_CPASYNC" in result.stderr


def test_cols_per_warp_does_not_split_cpasync_kernels():
    base = {"cpasync": 1, "cpa_stages": 3, "cpa_cols": 4, "threads_per_block": 256, "gemv_n_tile": 32}
    variants = {cuda_backend.kernel_variant({**base, "cols_per_warp": c}) for c in (1, 2, 4)}
    assert len(variants) == 1


def test_cpa_knobs_do_not_split_register_path_kernels():
    base = {"cpasync": 0, "cols_per_warp": 2, "threads_per_block": 128, "gemv_n_tile": 64}
    variants = {cuda_backend.kernel_variant({**base, "cpa_stages": s, "cpa_cols": c}) for s in (2, 3, 4) for c in (2, 4)}
    assert len(variants) == 1


def test_n_tile_is_a_run_time_argument_not_a_separate_build():
    base = {"cpasync": 0, "cols_per_warp": 4, "cpa_stages": 4, "cpa_cols": 2, "threads_per_block": 512}
    assert len({cuda_backend.kernel_variant({**base, "gemv_n_tile": t}) for t in cuda_backend.N_TILES}) == 1


def test_h100_has_nine_kernel_families_at_each_block_size():
    variants = cuda_backend.distinct_kernel_variants(KNOWN_DEVICES["h100"])
    # register path: 3 cols_per_warp; cp.async: 3 stages x 2 cols; each at 3 block sizes
    assert len(variants) == (3 + 3 * 2) * len(cuda_backend.THREADS_PER_BLOCK)


def test_search_space_lists_each_measurable_config_once():
    space = cuda_backend.cuda_search_space(KNOWN_DEVICES["h100"])
    configs = list(space)
    assert len(configs) == 27 * len(cuda_backend.N_TILES)
    assert len({tuple(sorted(c.items())) for c in configs}) == len(configs)


def test_a_ring_larger_than_the_devices_shared_memory_is_refused():
    space = cuda_backend.cuda_search_space(KNOWN_DEVICES["a10g"])  # 99 KiB per block
    config = {"cols_per_warp": 1, "cpasync": 1, "cpa_stages": 4, "cpa_cols": 4, "threads_per_block": 512, "gemv_n_tile": 32}
    assert cuda_backend.cpasync_smem_bytes(config) == 128 * 1024
    with pytest.raises(InvalidConfigError, match="fits 101376 bytes"):
        space.check(config)


def test_cpasync_is_refused_before_sm_80():
    space = cuda_backend.cuda_search_space(KNOWN_DEVICES["t4"])
    assert all(c["cpasync"] == 0 for c in space)
    with pytest.raises(InvalidConfigError, match="sm_80"):
        space.check({**space.default_config, "cpasync": 1})


def test_an_unknown_device_gets_only_rings_within_48_kib():
    space = cuda_backend.cuda_search_space(Device("some-gpu"))
    assert max(cuda_backend.cpasync_smem_bytes(c) for c in space) <= 48 * 1024


def test_records_store_the_knobs_in_schedule_layout_and_read_back():
    backend = cuda_backend.CudaBackend()
    knobs = {"cols_per_warp": 1, "cpasync": 1, "cpa_stages": 3, "cpa_cols": 4, "threads_per_block": 128,
             "gemv_n_tile": 16}
    record = backend.record_config(None, knobs)
    assert record["tiling"] == {"gemv": {"N_tile": 16}} and record["threads_per_block"] == 128
    assert record["kernel_knobs"] == {"cols_per_warp": 1, "cpasync": 1, "cpa_stages": 3, "cpa_cols": 4}
    assert backend.knob_config(None, record) == knobs
    assert backend.knob_config(None, knobs) == knobs


def test_a_schedule_that_is_not_a_gemv_schedule_is_an_invalid_config():
    with pytest.raises(InvalidConfigError, match="not a decode schedule"):
        cuda_backend.CudaBackend().knob_config(None, {"tiling": {"gemv": {"N_tile": 3}}})
