"""Helpers of the tune tests: tiny Kernel Tuner caches written on the spot, and toy backends that crash,
hang, beat the physical floor or sleep, each a real Backend the loop drives as it would any other."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs

from amk.core.backend import Backend
from amk.core.columns import config_key
from amk.core.devices import Device
from amk.core.records import Measurement, MeasurementKind, Verdict
from amk.core.space import Knob, SearchSpace
from amk.core.workload import Workload

BLOCKS = (16, 32, 64, 128)
TILES = (1, 2, 3)


def synthetic_time_ms(block: int, tile: int, device_factor: float, best_block: int) -> float:
    """A smooth landscape with its optimum at ``best_block`` and tile 2."""
    return device_factor * (1.0 + 0.3 * abs(BLOCKS.index(block) - BLOCKS.index(best_block)) + 0.2 * abs(tile - 2))


def write_cache(path: Path, *, device_name: str, device_factor: float = 1.0, best_block: int = 64,
                problem_size: Any = (1024, 1024), failed: tuple[tuple[int, int], ...] = ((128, 3),),
                kernel: str = "toy_kernel", tile_first: bool = False) -> Path:
    """A Kernel Tuner cache of ``kernel`` (block_size_x x tile_size_x, or tile first) on a device; .gz when
    the name says."""
    cache = {}
    params = ["tile_size_x", "block_size_x"] if tile_first else ["block_size_x", "tile_size_x"]
    for block in BLOCKS:
        for tile in TILES:
            values = {"block_size_x": block, "tile_size_x": tile}
            key = ",".join(str(values[p]) for p in params)
            entry: dict[str, Any] = {p: values[p] for p in params}
            if (block, tile) in failed:
                entry["time"] = "RuntimeFailedConfig"
            else:
                t = synthetic_time_ms(block, tile, device_factor, best_block)
                entry["times"] = [t * f for f in (0.99, 1.0, 1.0, 1.01, 1.02)]
                entry["time"] = sum(entry["times"]) / 5
                entry["compile_time"] = 100.0
            entry["timestamp"] = "2024-01-02 03:04:05.000006+00:00"
            cache[key] = entry
    data = {
        "device_name": device_name, "kernel_name": kernel,
        "problem_size": list(problem_size) if isinstance(problem_size, (list, tuple)) else problem_size,
        "tune_params_keys": params,
        "tune_params": {p: list(BLOCKS if p == "block_size_x" else TILES) for p in params},
        "objective": "time", "cache": cache,
    }
    text = json.dumps(data)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def toy_workload() -> Workload:
    return Workload("toy", "toy-kernel", {"n": 1024})


class ToyBackend(Backend):
    """A grid of ``x`` in 0..n-1 with latency 100 + (x - 7)^2 us; special configs misbehave on purpose."""

    name: ClassVar[str] = "toy"
    version: ClassVar[str] = "1"
    resumable_options: ClassVar[frozenset[str]] = frozenset({"sleep_s"})  # slower, the same latencies

    @attrs.frozen
    class Options:
        n: int = 16
        crash_at: int = -1  # measure raises on this x
        hang_at: int = -1  # measure blocks (until released) on this x
        below_floor_at: int = -1  # this x reports a latency under the floor
        floor: float = 0.0  # the floor in us (0: unknown)
        sleep_s: float = 0.0  # every measurement takes this long
        noise: float = 0.0  # relative noise of measured latencies
        kind: str = "predicted"

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        self.release = threading.Event()
        self.calls: list[int] = []
        import random

        self._random = random.Random(0)

    @property
    def measurement_kind(self) -> MeasurementKind:  # type: ignore[override]
        return MeasurementKind(self.options.kind)

    def search_space(self, workload: Workload, device: Device) -> SearchSpace:
        return SearchSpace([Knob("x", tuple(range(self.options.n)), 0)])

    def floor_us(self, workload: Workload, device: Device) -> float | None:
        return self.options.floor or None

    def true_latency(self, x: int) -> float:
        return 100.0 + (x - 7) ** 2

    def measure(self, workload: Workload, device: Device, config: Mapping[str, Any]) -> Measurement:
        x = config["x"]
        self.calls.append(x)
        if self.options.sleep_s:
            time.sleep(self.options.sleep_s)
        if x == self.options.crash_at:
            raise RuntimeError(f"the toy kernel crashed on x={x}")
        if x == self.options.hang_at:
            self.release.wait(60)
        latency = self.true_latency(x)
        if x == self.options.below_floor_at:
            latency = self.options.floor / 2
        if self.options.noise:
            latency *= 1 + self._random.gauss(0, self.options.noise)
        return Measurement(verdict=Verdict.PASS, kind=self.measurement_kind, latency_us=latency, samples=1)


def candidate_records(records) -> list:
    return [r for r in records if r.provenance.extra.get("role") == "candidate"]


def config_keys(records) -> list[str]:
    return [config_key(r.config) for r in records]
