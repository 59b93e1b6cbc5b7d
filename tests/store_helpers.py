"""Records and store URLs for the store tests, and a check that two columns hold the same rows."""

from __future__ import annotations

import numpy as np

from amk.core.columns import CorpusColumns
from amk.core.devices import KNOWN_DEVICES, Device
from amk.core.records import Measurement, MeasurementKind, Provenance, Record, Verdict
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


def make_record(i: int, *, writer: int = 0) -> Record:
    """A small, valid, varied record: the same ``i`` (and ``writer``) always gives the same record."""
    device = KNOWN_DEVICES[DEVICE_NAMES[i % len(DEVICE_NAMES)]]
    if i % 4 == 3:
        workload = Workload("kernel_tuner", "convolution", {"problem_size": [4096, 4096 + 1024 * (i % 2)]})
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


def unknown_device_record(i: int) -> Record:
    """A record on a device the registry does not know (no specs)."""
    record = make_record(i)
    return Record(workload=record.workload, device=Device("mystery-gpu"), config=record.config,
                  measurement=record.measurement, provenance=record.provenance)


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
