"""The sample data the checks run on: varied records, corpus queries, featurizer points, a learnable target.

Everything here is deterministic (the same call gives the same data), so a failed check reproduces.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from amk.core.columns import CorpusColumns
from amk.core.devices import KNOWN_DEVICES, Device
from amk.core.records import Measurement, MeasurementKind, Provenance, Record, Verdict
from amk.core.store import CorpusQuery
from amk.core.workload import Workload
from amk.decode.shapes import ModelShape
from amk.decode.workload import decode_workload

DEVICE_NAMES = ("h100", "a100", "l4")
SHAPES = (
    ModelShape(2048, 16, 32, 8, 64, 8192, 128256),
    ModelShape(4096, 32, 32, 8, 128, 14336, 128256),
    ModelShape(1024, 24, 16, 16, 64, 2816, 151936),
)
VERDICTS = (Verdict.PASS, Verdict.PASS, Verdict.PASS, Verdict.FAIL, Verdict.REJECTED)
UNKNOWN_DEVICE = "mystery-gpu"


def sample_record(i: int, *, writer: int = 0) -> Record:
    """A small, valid, varied record: the same ``i`` (and ``writer``) always gives the same record.

    Decode and Kernel Tuner workloads on three devices, every verdict and both measured and predicted
    kinds, optional fields both set and None, nested configs and provenance extras.
    """
    device = KNOWN_DEVICES[DEVICE_NAMES[i % len(DEVICE_NAMES)]]
    if i % 4 == 3:
        workload = Workload("kernel_tuner", "convolution", {"problem_size": [4096, 4096 + 1024 * (i // 4 % 2)]})  # two shapes
        config = {"block_size_x": 16 * (1 + i % 5), "block_size_y": 1 + i % 3}
    else:
        shape = SHAPES[i % len(SHAPES)]
        workload = decode_workload(f"model-{shape.hidden}", shape, dtype="bf16")
        config = {"tiling": {"gemv": {"N_tile": 64 * (1 + i % 4)}}, "pipelining_depth": 1 + i % 3,
                  "kernel_knobs": {"cpasync": i % 2}}
    verdict = VERDICTS[i % len(VERDICTS)]
    passed = verdict is Verdict.PASS
    measurement = Measurement(
        verdict=verdict,
        kind=MeasurementKind.PREDICTED if i % 7 == 0 else MeasurementKind.MEASURED,
        latency_us=100.0 + (i * 37 % 101) + 0.25 * writer if passed else None,
        spread_us=1.5 if passed else None,
        samples=10 if passed else None,
        bound_us=80.0 if passed and i % 2 else None,
        reason=None if passed else "wrong output",
    )
    provenance = Provenance(backend="test", backend_version="1", timestamp=1.7e9 + i,
                            source=f"test.jsonl:{i}" if i % 3 else None,
                            notes=f"writer {writer}", extra={"i": i, "writer": writer, "tags": ["a", "b"]})
    return Record(workload=workload, device=device, config=config, measurement=measurement, provenance=provenance)


def sample_record_on_unknown_device(i: int) -> Record:
    """``sample_record(i)`` on a device amk's registry does not know (no specs)."""
    return attrs.evolve(sample_record(i), device=Device(UNKNOWN_DEVICE))


def sample_records() -> list[Record]:
    """The corpus the store checks append: 120 varied records, then 5 on an unknown device."""
    return [sample_record(i) for i in range(120)] + [sample_record_on_unknown_device(i) for i in range(5)]


def sample_queries(records: Sequence[Record]) -> list[CorpusQuery]:
    """Queries over every field of :class:`CorpusQuery`, alone and combined, matching some records or none."""
    return [
        CorpusQuery(),
        CorpusQuery(device="h100"),
        CorpusQuery(device=UNKNOWN_DEVICE),
        CorpusQuery(device="no-such-device"),
        CorpusQuery(workload_kind="kernel_tuner"),
        CorpusQuery(workload_name="model-4096"),
        CorpusQuery(workload_shape=records[0].workload.shape),
        CorpusQuery(verdict=Verdict.FAIL),
        CorpusQuery(kind=MeasurementKind.PREDICTED),
        CorpusQuery(since=1.7e9 + 30, until=1.7e9 + 60),
        CorpusQuery(device="a100", workload_kind="decode", verdict=Verdict.PASS, kind=MeasurementKind.MEASURED),
    ]


def column_rows(cols: CorpusColumns) -> list[tuple]:
    """Every row of ``cols`` materialised, so columns built differently can be compared."""
    out = []
    for i in range(len(cols)):
        out.append((
            cols.workloads[cols.workload_index[i]].key, cols.devices[cols.device_index[i]],
            cols.configs[cols.config_index[i]], _num(cols.latency_us[i]), _num(cols.bound_us[i]),
            int(cols.verdict[i]), int(cols.kind[i]), _num(cols.timestamp[i]),
            None if cols.source is None else cols.source[i],
        ))
    return out


def _num(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


@attrs.frozen
class FeaturizerPoints:
    """Points for the featurizer checks: unique workloads, devices and configs, and one row per point.

    Row ``r`` is (``workloads[workload_index[r]]``, ``devices[device_index[r]]``, ``configs[config_index[r]]``),
    as :class:`~amk.core.columns.CorpusColumns` holds them.
    """

    workloads: list[Workload]
    devices: list[Device]
    configs: list[Mapping[str, Any]]
    workload_index: np.ndarray
    device_index: np.ndarray
    config_index: np.ndarray

    def __len__(self) -> int:
        return len(self.workload_index)

    def expanded(self, rows: Sequence[int] | np.ndarray | None = None) -> tuple[list, list, list]:
        """(workloads, devices, configs) with one entry per row (of ``rows``; all when None)."""
        rows = np.arange(len(self)) if rows is None else np.asarray(rows)
        return ([self.workloads[i] for i in self.workload_index[rows]],
                [self.devices[i] for i in self.device_index[rows]],
                [self.configs[i] for i in self.config_index[rows]])


def sample_points() -> FeaturizerPoints:
    """Kernel Tuner workloads with numeric and categorical knobs, and a decode step with its schedules,
    on two known devices and one without specs: 30 points, several sharing a workload, device or config."""
    workloads = [
        Workload("kernel_tuner", "convolution", {"problem_size": [4096, 4096]}),
        Workload("kernel_tuner", "convolution", {"problem_size": [1024, 2048]}),
        Workload("kernel_tuner", "gemm", {"problem_size": [512, 512, 512]}),
        decode_workload("tiny-decode", ModelShape(256, 2, 4, 2, 64, 512, 1024), dtype="bf16"),
    ]
    devices = [KNOWN_DEVICES["a100"], KNOWN_DEVICES["a4000"], Device(UNKNOWN_DEVICE)]
    kernel_configs = [{"block_size_x": bx, "tile": tile, "mode": mode}
                      for bx, tile, mode in itertools.product((16, 64, 256), (1, 2), ("fast", "safe"))]
    decode_configs = [{"tiling": {"gemv": {"N_tile": n}}, "threads_per_block": 256, "pipelining_depth": depth,
                       "kernel_knobs": {"cpasync": depth % 2}} for n, depth in ((64, 1), (128, 2), (256, 3))]
    configs = kernel_configs + decode_configs
    rows = []
    for r in range(24):  # kernel points
        rows.append((r % 3, r % 3 if r % 5 else 0, (r * 5) % len(kernel_configs)))
    for r in range(6):  # decode points
        rows.append((3, r % 2, len(kernel_configs) + r % len(decode_configs)))
    wi, di, ci = (np.asarray(col, dtype=np.int64) for col in zip(*rows))
    return FeaturizerPoints(workloads, devices, configs, wi, di, ci)


LEARNABLE_WEIGHTS = np.array([1.0, -0.5, 0.25])


def learnable_data(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, groups) with a trivially learnable target: y is linear in X's three columns (lower = better);
    groups of 40 rows stand for workload + device queries."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, size=(n, len(LEARNABLE_WEIGHTS)))
    return X, X @ LEARNABLE_WEIGHTS, np.repeat(np.arange(n // 40 + 1), 40)[:n]
