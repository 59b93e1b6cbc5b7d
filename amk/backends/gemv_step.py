"""What the measured GEMV backends share: the decode step they time, its correctness check and its statistics.

A measured step is ``layers`` decoder layers' projections (q/k/v, o, gate/up, down), where ``layers`` is
the shape's layer count scaled down until the weights fit a memory budget; the latency and the floor of a
measurement are both for that many layers, so their ratio is the fraction of the floor reached.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from amk.core.errors import ValidationError
from amk.core.workload import Workload
from amk.decode.step import Projection, decode_dtype, dtype_bytes, layer_projections
from amk.decode.workload import DECODE_KIND, model_shape

if TYPE_CHECKING:
    import torch

# Largest tolerated |y - ref| relative to the reference's scale (see ``output_error``): about one unit
# in the last place of each dtype's output rounding, with room for a different summation order.
TOLERANCE: dict[str, float] = {"fp32": 1e-4, "fp16": 2e-3, "bf16": 1.6e-2}


@attrs.frozen
class StepPlan:
    """The GEMVs one measurement runs: ``layers`` copies of one layer's projections, in ``dtype``."""

    dtype: str
    layers: int
    model_layers: int  # the shape's own layer count (0 when unknown)
    projections: tuple[Projection, ...]

    @property
    def layer_bytes(self) -> int:
        return sum(p.weight_bytes(self.dtype) for p in self.projections)

    @property
    def weight_bytes(self) -> int:
        return self.layers * self.layer_bytes

    def floor_us(self, bandwidth_gbps: float) -> float:
        """Weight bytes / bandwidth: no GEMV step can read its weights faster."""
        if not bandwidth_gbps or bandwidth_gbps <= 0:
            raise ValidationError(f"memory bandwidth {bandwidth_gbps!r} GB/s must be positive.")
        return self.weight_bytes / (bandwidth_gbps * 1e9) * 1e6


@attrs.frozen(eq=False)
class PreparedStep:
    """The tensors of one workload's step, built once and reused for every config measured on it (and
    by benchmarks, to time other implementations on the same data)."""

    key: tuple  # (workload key, backend options): what they were built for
    plan: StepPlan
    replicas: list  # per replica: the step's weight tensors, layer-major (see ``replicate_layer``)
    xs: list  # one input per GEMV of the step
    ys: list  # one output per GEMV of the step
    references: list  # per projection of a layer: torch's fp32 result


def plan_decode_step(workload: Workload, memory_budget_bytes: int) -> StepPlan:
    """The step to time for ``workload``: its layer count, scaled down so the weights fit the budget."""
    if workload.kind != DECODE_KIND:
        raise ValidationError(
            f"workload {workload.name!r} is a {workload.kind!r} workload; the GEMV backends time decode workloads."
        )
    dtype = decode_dtype(workload)
    shape = model_shape(workload)
    projections = tuple(layer_projections(shape))
    layer_bytes = sum(p.weight_bytes(dtype) for p in projections)
    fit = max(1, memory_budget_bytes // layer_bytes)
    layers = min(shape.n_layers or 1, fit)
    return StepPlan(dtype, layers, shape.n_layers, projections)


def torch_dtype(dtype: str) -> torch.dtype:
    import torch

    dtype_bytes(dtype)  # raises on an unknown dtype
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]


def output_error(y: torch.Tensor, reference: torch.Tensor, dtype: str) -> str | None:
    """Why ``y`` is not ``reference`` at ``dtype``'s tolerance, or None when it matches.

    Elementwise ``|y - ref| <= tol * (|ref| + rms(ref))``: relative for large outputs, and scaled to
    the output's size for outputs near zero, where a relative test means nothing.
    """
    import torch

    got = y.detach().to("cpu", torch.float64)
    ref = reference.detach().to("cpu", torch.float64)
    if got.shape != ref.shape:
        return f"output shape {tuple(got.shape)} is not the reference's {tuple(ref.shape)}"
    if not torch.isfinite(got).all():
        return f"{int((~torch.isfinite(got)).sum())} of {got.numel()} outputs are not finite"
    tol = TOLERANCE[dtype]
    scale = float(ref.square().mean().sqrt()) if ref.numel() else 0.0
    err = (got - ref).abs()
    bad = err > tol * (ref.abs() + scale)
    if bad.any():
        worst = int(torch.argmax(err))
        return (f"{int(bad.sum())} of {got.numel()} outputs differ from torch beyond the {dtype} tolerance "
                f"{tol:g} (worst: output {worst}, {float(got[worst]):.6g} vs {float(ref[worst]):.6g})")
    return None


def check_step_outputs(prepared: PreparedStep) -> str | None:
    """Why some output of the step's last run is wrong (which layer and projection), or None."""
    n_proj = len(prepared.plan.projections)
    for i, y in enumerate(prepared.ys):
        wrong = output_error(y, prepared.references[i % n_proj], prepared.plan.dtype)
        if wrong:
            return f"layer {i // n_proj} {prepared.plan.projections[i % n_proj].name}: {wrong}"
    return None


def latency_stats(samples_s: Sequence[float]) -> tuple[float, float]:
    """(median, interquartile range) of per-step times in seconds, both in microseconds."""
    if not samples_s:
        raise ValueError("no timing samples")
    us = sorted(s * 1e6 for s in samples_s)
    median = statistics.median(us)
    if len(us) < 4:
        return median, us[-1] - us[0]
    q1, _q2, q3 = statistics.quantiles(us, n=4, method="inclusive")
    return median, q3 - q1


def replicate_layer(layer: Sequence[torch.Tensor], layers: int, replicas: int) -> list[list[torch.Tensor]]:
    """``replicas`` copies of a step of ``layers`` identical layers, as 2-D views into one allocation
    (one large copy instead of thousands of small ones), layer-major within each replica.

    Every view starts at a multiple of its own size, so a row is 16-byte aligned whenever
    ``k * element size`` is a multiple of 16 (what vector loads need)."""
    import torch

    flat = torch.cat([w.reshape(-1) for w in layer])
    block = flat.repeat(layers * replicas)
    sizes = [w.numel() for w in layer]
    out: list[list[torch.Tensor]] = []
    offset = 0
    for _r in range(replicas):
        step = []
        for _l in range(layers):
            for w, size in zip(layer, sizes):
                step.append(block[offset:offset + size].view(w.shape))
                offset += size
        out.append(step)
    return out
