"""Small corpora for the prior's tests: records built directly, with known latencies."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from amk.core.devices import Device, resolve_device
from amk.core.records import Measurement, MeasurementKind, Provenance, Record, Verdict
from amk.core.workload import Workload
from amk.decode.shapes import ModelShape
from amk.decode.workload import decode_workload

SMALL = ModelShape(hidden=2048, n_layers=4, n_heads=32, n_kv_heads=8, head_dim=64, intermediate=8192, vocab=32000)
WIDE = ModelShape(hidden=2560, n_layers=4, n_heads=32, n_kv_heads=8, head_dim=80, intermediate=10240, vocab=32000)
HUGE = ModelShape(hidden=8192, n_layers=80, n_heads=64, n_kv_heads=8, head_dim=128, intermediate=28672,
                  vocab=128000)


def record(workload: Workload, device: str | Device, config: dict[str, Any], latency_us: float | None, *,
           verdict: Verdict = Verdict.PASS, kind: MeasurementKind = MeasurementKind.MEASURED,
           source: str | None = None) -> Record:
    dev = device if isinstance(device, Device) else resolve_device(device)
    return Record(
        workload=workload, device=dev, config=config,
        measurement=Measurement(verdict=verdict, kind=kind, latency_us=latency_us,
                                reason=None if verdict is Verdict.PASS else "test"),
        provenance=Provenance(backend="test", source=source),
    )


def kernel(name: str = "conv", problem_size: list[int] | None = None) -> Workload:
    return Workload("kernel_tuner", name, {"problem_size": problem_size or [4096, 4096]})


def decode(name: str, shape: ModelShape = SMALL) -> Workload:
    return decode_workload(name, shape)


def schedule(n_tile: int = 64, cols_per_warp: int | None = 1, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"tiling": {"gemv": {"N_tile": n_tile}}, "threads_per_block": 256, **extra}
    if cols_per_warp is not None:
        config["kernel_knobs"] = {"cols_per_warp": cols_per_warp}
    return config


def grid_configs() -> list[dict[str, int]]:
    """A 4 x 4 x 2 grid of knob settings."""
    return [{"bx": bx, "tile": t, "shmem": s} for bx, t, s in itertools.product((16, 32, 64, 128), (1, 2, 3, 4), (0, 1))]


def landscape_latency(config: dict[str, int], device: str) -> float:
    """A smooth synthetic cost: best near bx=64, tile=3, shmem=1; devices differ by a scale only."""
    scale = {"a100": 1.0, "a4000": 2.5, "a6000": 1.6, "h100": 0.6}.get(device, 1.0)
    cost = 100.0 * (1.0 + 0.3 * abs(np.log2(config["bx"] / 64)) + 0.2 * abs(config["tile"] - 3)
                    + 0.25 * (1 - config["shmem"]))
    return scale * cost


def landscape_records(devices=("a100", "a4000", "a6000"), name: str = "conv") -> list[Record]:
    return [record(kernel(name), d, c, landscape_latency(c, d), source=f"{d}#{i}")
            for d in devices for i, c in enumerate(grid_configs())]
