"""The ``roofline`` backend: amk's decode workload, latency predicted from bytes over bandwidth.

Nothing runs: every record it produces is of kind ``predicted``. The floor of a decode step is its
weight bytes over the device's memory bandwidth (:mod:`amk.decode.step`); the predicted latency divides
each projection's share of that floor by an efficiency in (0, 1] and adds a fixed cost per operation,
so a prediction is never below the floor. The efficiency is the product of five documented factors:

- **wave** (``gemv_n_tile``): a projection of N rows is cut into ceil(N / n_tile) tiles spread over the
  SMs one per SM at a time; a last, partial wave leaves SMs idle: tiles / (waves * SMs).
- **tile overhead** (``gemv_n_tile``): each tile re-reads the input vector and reduces its rows,
  worth about 8 rows of weights: n_tile / (n_tile + 8).
- **memory-level parallelism** (Little's law; ``threads_per_block``, ``cpasync``, ``cpa_stages``,
  ``cpa_cols``, ``cols_per_warp``): an SM keeps its share of the bandwidth busy only with
  ``bandwidth / SMs * 0.8 us`` bytes in flight. A warp has ``cpa_stages * cpa_cols * 512`` bytes in
  flight on the cp.async path, ``2 * cols_per_warp * 512`` on the register path; resident warps are
  limited by 2048 threads, 16 blocks, 64 K registers (the register path needs ``32 + 16 *
  cols_per_warp`` per thread, cp.async 40) and shared memory (the cp.async ring). Factor:
  1 - exp(-in_flight / needed).
- **path**: the cp.async path streams at 0.97; the register path at 0.92 and re-reads the input vector
  once per column group: 0.92 * (1 - 0.06 / cols_per_warp).
- **pipelining** (``pipelining_depth``): prefetching the next operations' weights costs registers,
  1 - 0.02 * depth, and hides the fixed cost of an operation boundary, 1.5 us / (1 + depth).

Canonical configs: on the cp.async path ``cols_per_warp`` does nothing (kept at 1); on the register
path ``cpa_stages`` and ``cpa_cols`` do nothing (kept at their defaults). The constraint: the cp.async
ring (``threads_per_block / 32 * cpa_stages * cpa_cols * 512`` bytes) must fit the device's shared
memory per block.

The model is deliberately simple: it ranks configs plausibly and gives the loop a realistic landscape
(device- and shape-dependent optimum); it is no substitute for measuring.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from amk.core.backend import Backend
from amk.core.devices import Device
from amk.core.errors import BackendError
from amk.core.records import Measurement, MeasurementKind, Verdict
from amk.core.space import Knob, SearchSpace
from amk.core.workload import Workload
from amk.decode.knobs import knobs_of_schedule, schedule_of_knobs
from amk.decode.schedule import SEARCHABLE_KNOB_CHOICES, SEARCHABLE_KNOB_DEFAULTS
from amk.decode.step import decode_dtype, decode_floor_us, layer_projections
from amk.decode.workload import DECODE_KIND, model_shape

SCHEDULE_KNOBS: dict[str, tuple[tuple[int, ...], int]] = {  # name -> (choices, default)
    "gemv_n_tile": ((16, 32, 64, 128, 256), 64),
    "threads_per_block": ((128, 256, 512), 256),
    "pipelining_depth": ((0, 1, 2, 3, 4), 2),
}
KNOB_NAMES: tuple[str, ...] = (*SCHEDULE_KNOBS, *SEARCHABLE_KNOB_CHOICES)

CHUNK_BYTES = 512  # one warp's 16-byte-per-lane load of a weight column chunk
MEMORY_LATENCY_US = 0.8
MAX_THREADS_PER_SM = 2048
MAX_BLOCKS_PER_SM = 16
REGISTERS_PER_SM = 65_536
OP_BOUNDARY_US = 1.5
LAUNCH_US = 3.0


def ring_bytes(knobs: Mapping[str, int]) -> int:
    """Shared memory the cp.async ring of one block needs (0 on the register path)."""
    if not knobs["cpasync"]:
        return 0
    return knobs["threads_per_block"] // 32 * knobs["cpa_stages"] * knobs["cpa_cols"] * CHUNK_BYTES


def canonical_knobs(config: Mapping[str, Any]) -> dict[str, Any]:
    """The representative of the configs that build the same kernel (see the module docstring)."""
    out = dict(config)
    if out.get("cpasync") == 1:
        out["cols_per_warp"] = SEARCHABLE_KNOB_DEFAULTS["cols_per_warp"]
    elif out.get("cpasync") == 0:
        out["cpa_stages"] = SEARCHABLE_KNOB_DEFAULTS["cpa_stages"]
        out["cpa_cols"] = SEARCHABLE_KNOB_DEFAULTS["cpa_cols"]
    return out


def efficiency(knobs: Mapping[str, int], n_rows: int, device: Device) -> float:
    """The fraction of the device's bandwidth one projection of ``n_rows`` rows reaches (see the module)."""
    sms = device.sm_count
    tiles = math.ceil(n_rows / knobs["gemv_n_tile"])
    waves = math.ceil(tiles / sms)
    f_wave = tiles / (waves * sms)
    f_tile = knobs["gemv_n_tile"] / (knobs["gemv_n_tile"] + 8)

    tpb = knobs["threads_per_block"]
    regs = 40 if knobs["cpasync"] else 32 + 16 * knobs["cols_per_warp"]
    blocks = min(MAX_THREADS_PER_SM // tpb, MAX_BLOCKS_PER_SM, REGISTERS_PER_SM // (regs * tpb))
    smem = ring_bytes(knobs)
    if smem:
        blocks = min(blocks, (device.smem_per_block_bytes or 49_152) // smem)
    blocks = max(blocks, 1)
    warps = blocks * tpb // 32
    if knobs["cpasync"]:
        per_warp = knobs["cpa_stages"] * knobs["cpa_cols"] * CHUNK_BYTES
        f_path = 0.97
    else:
        per_warp = 2 * knobs["cols_per_warp"] * CHUNK_BYTES
        f_path = 0.92 * (1 - 0.06 / knobs["cols_per_warp"])
    needed = device.mem_bandwidth_gbps * 1e9 / sms * MEMORY_LATENCY_US * 1e-6
    f_mlp = 1 - math.exp(-warps * per_warp / needed)
    f_pipe = 1 - 0.02 * knobs["pipelining_depth"]
    return f_wave * f_tile * f_mlp * f_path * f_pipe


class RooflineBackend(Backend):
    name: ClassVar[str] = "roofline"
    version: ClassVar[str] = "1"
    measurement_kind: ClassVar[MeasurementKind] = MeasurementKind.PREDICTED
    deterministic: ClassVar[bool] = True  # the same config gives the same result: never evaluated twice

    @attrs.frozen
    class Options:
        layers: int = attrs.field(default=0, validator=attrs.validators.ge(0))  # predict this many layers (0: the shape's n_layers)

    def _check(self, workload: Workload, device: Device) -> None:
        if workload.kind != DECODE_KIND:
            raise BackendError(
                f"the roofline backend models decode workloads, not {workload.kind!r} ({workload.name!r}); "
                "use the replay backend for recorded kernels."
            )
        missing = [f for f in ("mem_bandwidth_gbps", "sm_count") if getattr(device, f) is None]
        if missing:
            from amk.core.devices import KNOWN_DEVICES

            raise BackendError(
                f"the roofline backend needs the {', '.join(missing)} of device {device.name!r}, which amk "
                f"does not know; use one of {sorted(KNOWN_DEVICES)}."
            )

    def search_space(self, workload: Workload, device: Device) -> SearchSpace:
        self._check(workload, device)
        knobs = [Knob(name, choices, default) for name, (choices, default) in SCHEDULE_KNOBS.items()]
        knobs += [Knob(name, choices, SEARCHABLE_KNOB_DEFAULTS[name])
                  for name, choices in SEARCHABLE_KNOB_CHOICES.items()]
        limit = device.smem_per_block_bytes or 49_152
        return SearchSpace(
            knobs,
            constraints=(lambda c: ring_bytes(c) <= limit,),
            constraint_texts=(f"'the cp.async ring fits the {limit} bytes of shared memory per block'",),
            canonicalize=canonical_knobs,
        )

    def record_config(self, workload: Workload, knobs: Mapping[str, Any]) -> dict[str, Any]:
        return schedule_of_knobs(knobs)

    def knob_config(self, workload: Workload, config: Mapping[str, Any]) -> dict[str, Any]:
        return knobs_of_schedule(config, KNOB_NAMES, SCHEDULE_KNOBS["gemv_n_tile"][1])

    def floor_us(self, workload: Workload, device: Device) -> float | None:
        self._check(workload, device)
        return decode_floor_us(workload, device.mem_bandwidth_gbps, self.options.layers or None)

    def predict_us(self, workload: Workload, device: Device, knobs: Mapping[str, int]) -> float:
        """The predicted latency of one decode step (see the module docstring)."""
        shape = model_shape(workload)
        layers = self.options.layers or shape.n_layers
        dtype = decode_dtype(workload)
        bandwidth = device.mem_bandwidth_gbps * 1e9
        per_layer = sum(p.weight_bytes(dtype) / (bandwidth * efficiency(knobs, p.n, device)) * 1e6
                        for p in layer_projections(shape))
        boundaries = len(layer_projections(shape)) * OP_BOUNDARY_US / (1 + knobs["pipelining_depth"])
        return layers * (per_layer + boundaries) + LAUNCH_US

    def measure(self, workload: Workload, device: Device, config: Mapping[str, Any]) -> Measurement:
        knobs = self.knob_config(workload, config)
        self.search_space(workload, device).check(knobs)
        floor = self.floor_us(workload, device)
        return Measurement(verdict=Verdict.PASS, kind=MeasurementKind.PREDICTED,
                           latency_us=self.predict_us(workload, device, knobs), spread_us=0.0, samples=1,
                           bound_us=floor)
