"""A generator of N realistic synthetic corpus records, deterministic for a seed.

Two families, mixed 80/20:
- ``decode`` workloads: LLM decode steps of many model shapes (hidden 1024..8192, GQA, FFN ratios,
  several vocabularies) on the registry's known devices, each config a ``ScheduleConfig`` with its
  ``KernelKnobs``; the latency is the shape's physical floor on that device times a penalty that depends
  on the config (tile size vs. hidden, pipelining, cp.async, ...) plus noise, so configs really differ
  and the best ones are shape- and device-dependent;
- ``kernel_tuner`` workloads: Kernel Tuner-like kernels (convolution, dedispersion, gemm) with problem
  sizes and block-size/tiling parameters.

About 8% of points fail (FAIL, REJECTED, TIMEOUT), 10% are ``predicted`` rather than ``measured``, and
configs repeat (samples). ``python -m bench.synthetic N OUT.jsonl`` writes them as amk JSONL.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from amk.core.devices import KNOWN_DEVICES, Device
from amk.core.records import Measurement, MeasurementKind, Provenance, Record, Verdict, record_to_json
from amk.core.workload import Workload
from amk.decode.schedule import SEARCHABLE_KNOB_CHOICES, KernelKnobs, ScheduleConfig
from amk.decode.shapes import ModelShape
from amk.decode.step import decode_floor_us
from amk.decode.workload import decode_workload
from amk.formats.kernel_tuner import KERNEL_TUNER_KIND

DEVICES: tuple[str, ...] = ("h100", "a100", "l4", "a6000", "rtx4090", "t4")
START_TIME = 1.75e9  # seconds since the epoch of the first synthetic record


def _decode_workloads(rng: np.random.Generator, n: int) -> list[Workload]:
    workloads = []
    for i in range(n):
        hidden = int(rng.choice([1024, 1536, 2048, 2560, 3072, 4096, 5120, 6144, 8192]))
        head_dim = int(rng.choice([64, 128]))
        n_heads = max(1, hidden // head_dim)
        n_kv = int(rng.choice([h for h in (1, 2, 4, 8, n_heads) if n_heads % h == 0]))
        ffn = float(rng.choice([2.6875, 3.5, 4.0, 5.375]))
        shape = ModelShape(hidden=hidden, n_layers=int(rng.choice([12, 16, 24, 28, 32, 40, 48, 64, 80])),
                           n_heads=n_heads, n_kv_heads=n_kv, head_dim=head_dim,
                           intermediate=int(hidden * ffn) // 64 * 64,
                           vocab=int(rng.choice([32000, 50304, 128256, 151936])))
        workloads.append(decode_workload(f"synth-{hidden}h-{shape.n_layers}L-{i}", shape,
                                         dtype=str(rng.choice(["bf16", "fp16"]))))
    return workloads


def _decode_configs(rng: np.random.Generator, n: int) -> list[dict]:
    configs = []
    for _ in range(n):
        knobs = KernelKnobs(**{k: int(rng.choice(v)) for k, v in SEARCHABLE_KNOB_CHOICES.items()})
        cfg = ScheduleConfig(
            gemv_n_tile=int(rng.choice([32, 64, 128, 256, 512, 1024])),
            attention_kv_block=int(rng.choice([32, 64, 128, 256])),
            fusion_grouping=[["rmsnorm", "qkv"], ["gate", "up"]][: int(rng.integers(0, 3))],
            sm_assignment=str(rng.choice(["round_robin", "load_balance"])),
            pipelining_depth=int(rng.integers(1, 5)),
            page_allocation=str(rng.choice(["linear", "graph_color"])),
            threads_per_block=int(rng.choice([128, 256, 512])),
            smem_bytes_per_block=int(rng.choice([0, 16384, 49152, 98304])),
            kernel_knobs=knobs,
        )
        configs.append(cfg.to_dict())
    return configs


def _decode_penalty(workload: Workload, cfg: dict, device: Device) -> float:
    """How far from the floor a config runs (>= 1): a smooth, shape- and device-dependent landscape."""
    hidden = workload.shape["hidden"]
    tile = cfg["tiling"]["gemv"]["N_tile"]
    knobs = cfg["kernel_knobs"]
    sm = device.sm_count or 64
    ideal_tile = 2 ** round(np.log2(max(32, hidden / sm * 4)))
    penalty = 1.08 + 0.18 * abs(np.log2(tile / ideal_tile))
    penalty += 0.06 * abs(cfg["pipelining_depth"] - (3 if knobs["cpasync"] else 2))
    penalty += 0.04 * abs(knobs["cols_per_warp"] - (2 if hidden >= 4096 else 1))
    penalty += 0.05 * (knobs["cpasync"] == 0) + 0.02 * abs(knobs["cpa_stages"] - 3)
    penalty += 0.03 * (cfg["threads_per_block"] != 256) + 0.02 * len(cfg["fusion_grouping"] or [])
    return penalty


_KT_KERNELS = {
    "convolution": {"block_size_x": (16, 32, 48, 64, 128), "block_size_y": (1, 2, 4, 8, 16),
                    "tile_size_x": (1, 2, 3, 4), "tile_size_y": (1, 2, 4), "use_padding": (0, 1),
                    "read_only": (0, 1)},
    "dedispersion": {"block_size_x": (32, 64, 128, 256), "block_size_y": (1, 2, 4, 8), "tile_size_x": (1, 2, 4),
                     "tile_size_y": (1, 2, 4, 8), "loop_unroll_factor_channel": (0, 1, 2, 4)},
    "gemm": {"MWG": (16, 32, 64, 128), "NWG": (16, 32, 64, 128), "KWG": (16, 32), "VWM": (1, 2, 4, 8),
             "VWN": (1, 2, 4, 8), "SA": (0, 1), "SB": (0, 1)},
}


def _kernel_tuner_workloads(rng: np.random.Generator, n: int) -> list[Workload]:
    names = sorted(_KT_KERNELS)
    return [Workload(KERNEL_TUNER_KIND, names[i % len(names)],
                     {"problem_size": [int(rng.choice([1024, 2048, 4096, 8192])), int(rng.choice([1024, 2048, 4096]))]})
            for i in range(n)]


def synthetic_records(n: int, seed: int = 0, *, n_decode_workloads: int = 400, n_decode_configs: int = 3000,
                      n_kt_workloads: int = 60, configs_per_kt_kernel: int = 1500) -> Iterator[Record]:
    """``n`` synthetic records (see the module docstring), the same for the same arguments."""
    rng = np.random.default_rng(seed)
    devices = [KNOWN_DEVICES[d] for d in DEVICES]
    decode_workloads = _decode_workloads(rng, n_decode_workloads)
    decode_configs = _decode_configs(rng, n_decode_configs)
    kt_workloads = _kernel_tuner_workloads(rng, n_kt_workloads)
    kt_configs = {name: [{k: int(rng.choice(v)) for k, v in space.items()} for _ in range(configs_per_kt_kernel)]
                  for name, space in _KT_KERNELS.items()}
    floors: dict[tuple[int, int], float] = {}
    provenance_extra = {"host": "synthetic"}

    chunk = 4096
    produced = 0
    while produced < n:
        m = min(chunk, n - produced)
        family = rng.random(m)
        dev_i = rng.integers(0, len(devices), m)
        wl_decode = rng.integers(0, n_decode_workloads, m)
        wl_kt = rng.integers(0, n_kt_workloads, m)
        cfg_decode = rng.integers(0, n_decode_configs, m)
        cfg_kt = rng.integers(0, configs_per_kt_kernel, m)
        noise = rng.lognormal(0.0, 0.03, m)
        outcome = rng.random(m)
        predicted = rng.random(m) < 0.10
        for j in range(m):
            device = devices[dev_i[j]]
            if family[j] < 0.8:
                workload = decode_workloads[wl_decode[j]]
                config = decode_configs[cfg_decode[j]]
                key = (int(wl_decode[j]), int(dev_i[j]))
                floor = floors.get(key)
                if floor is None:
                    floor = floors[key] = decode_floor_us(workload, device.mem_bandwidth_gbps)
                latency = floor * _decode_penalty(workload, config, device) * noise[j]
                bound = floor
                backend = "cuda"
            else:
                workload = kt_workloads[wl_kt[j]]
                config = kt_configs[workload.name][cfg_kt[j]]
                size = workload.shape["problem_size"][0] * workload.shape["problem_size"][1]
                work = sum(config.values()) + 7
                latency = size / (device.mem_bandwidth_gbps or 500.0) * (1.0 + 3.0 / work) * noise[j] / 50.0
                bound = None
                backend = "kernel_tuner"
            if outcome[j] < 0.92:
                measurement = Measurement(verdict=Verdict.PASS,
                                          kind=MeasurementKind.PREDICTED if predicted[j] else MeasurementKind.MEASURED,
                                          latency_us=float(latency), spread_us=float(latency) * 0.01, samples=20,
                                          bound_us=bound)
            else:
                verdict = (Verdict.FAIL, Verdict.REJECTED, Verdict.TIMEOUT)[int(outcome[j] * 1000) % 3]
                measurement = Measurement(verdict=verdict, kind=MeasurementKind.MEASURED,
                                          reason=f"synthetic {verdict.value.lower()}")
            yield Record(workload=workload, device=device, config=config, measurement=measurement,
                         provenance=Provenance(backend=backend, backend_version="1.0",
                                               timestamp=START_TIME + produced + j, extra=provenance_extra))
        produced += m


def write_jsonl(path: Path, n: int, seed: int = 0) -> None:
    with path.open("w") as f:
        for record in synthetic_records(n, seed):
            f.write(record_to_json(record) + "\n")


if __name__ == "__main__":
    write_jsonl(Path(sys.argv[2]), int(sys.argv[1]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)
