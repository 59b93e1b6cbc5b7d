"""Shared pieces of the kernel-backend tests: small decode workloads that build and run in seconds."""

from __future__ import annotations

from amk.core.workload import Workload
from amk.decode.shapes import ModelShape
from amk.decode.workload import decode_workload

# A decode layer small enough to measure many configs quickly; K values (256, 512) are multiples of every
# vector width, N values exercise tile tails (qkv: (4 + 2*2) * 64 = 512 rows, o: 256, gate_up: 1024, down: 256).
TINY_SHAPE = ModelShape(hidden=256, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=64, intermediate=512)
# K = 200 and 600: not a multiple of the CPU kernel's 16-lane step (exercises the scalar tail), and
# rows of odd counts (N = 200 + ...) that no N tile divides.
RAGGED_SHAPE = ModelShape(hidden=200, n_layers=1, n_heads=5, n_kv_heads=5, head_dim=40, intermediate=300)


def tiny_workload(dtype: str = "bf16", shape: ModelShape = TINY_SHAPE) -> Workload:
    return decode_workload("tiny-decode", shape, dtype=dtype)
