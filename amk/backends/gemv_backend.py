"""What the measured GEMV backends (cpu, cuda) share: one measurement of the decode step, start to end.

A measurement validates the config, builds (or loads) its kernel, runs the step once and checks every
output against torch, times it, checks the outputs of the last timed run, and rejects a latency below
the memory-bandwidth floor as an artifact. The step's tensors are prepared once per workload. A
subclass says only what differs on its device: how the kernel is built and launched (``_launcher``),
how the step is timed (``_time_step``), where tensors live (``torch_device``) and how large the cache
is that cold-cache weight replicas must outgrow (``_cache_bytes``).
"""

from __future__ import annotations

import functools
import math
from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from amk.backends.gemv_step import (
    PreparedStep,
    StepPlan,
    check_step_outputs,
    latency_stats,
    plan_decode_step,
    replicate_layer,
    torch_dtype,
)
from amk.core.backend import Backend
from amk.core.devices import Device
from amk.core.errors import BackendError
from amk.core.records import Measurement, MeasurementKind, Verdict
from amk.core.workload import Workload

# Runs the decode step once on weight replica ``replica`` of a prepared step: (prepared, replica) -> None.
Launch = Callable[[PreparedStep, int], None]


class KernelCrash(Exception):
    """Raised by ``GemvBackend._launcher`` when one config's kernel cannot be made (its own build failed):
    ``measure`` records a CRASH with this message as the reason. It never leaves ``measure``."""


class GemvBackend(Backend):
    """Times the decode step's GEMVs (``gemv_step.StepPlan``) with a compiled, knob-parameterised kernel.

    A subclass's ``Options`` has at least ``warmup`` (untimed runs), ``repeats`` (timed runs; the
    latency is their median), ``memory_budget_mb`` (the step's weights and their replicas fit this),
    ``cold_cache`` (rotate weight replicas so each timed run reads memory, not cache) and ``seed`` (of
    the random weights and inputs).
    """

    measurement_kind = MeasurementKind.MEASURED
    isolation = "process"  # compiled kernels: a crash or hang must not end the tune run
    requires: ClassVar[dict[str, str]] = {"torch": "torch"}

    torch_device: ClassVar[str]  # where the step's tensors live: "cpu" or "cuda"
    measures: ClassVar[str]  # the hardware it measures, in words ("this machine's CPU")
    max_replicas: ClassVar[int | None] = None  # at most this many weight replicas (None: the budget decides)
    kernel_error: ClassVar[str]  # how a CRASH's reason starts when a run raises ("the kernel raised")
    # A latency below the floor is reported with this many decimals, and this note after the numbers.
    floor_digits: ClassVar[int]
    below_floor_note: ClassVar[str]

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self._prepared: PreparedStep | None = None

    # -- what can run here -------------------------------------------------------------------------
    def availability(self) -> tuple[bool, str]:
        try:
            import torch
        except ImportError:
            return False, "torch is not installed: pip install 'amk[torch]'"
        return self._availability_with(torch)

    @abstractmethod
    def _availability_with(self, torch: Any) -> tuple[bool, str]:
        """``availability()`` once torch imports: whether the device and the kernel's toolchain are here."""

    @abstractmethod
    def _device_here(self) -> Device:
        """The device this backend measures on (its name is what records are labelled with)."""

    def _check_device(self, device: Device) -> None:
        """Raise BackendError unless ``device`` is the one measured here, so no record is mislabelled."""
        here = self._device_here()
        if device.name != here.name:
            raise BackendError(f"the {self.name} backend measures {self.measures}, {here.name!r}, not device "
                               f"{device.name!r}; tune with the device {here.name!r}.")

    # -- the step ----------------------------------------------------------------------------------
    def plan(self, workload: Workload) -> StepPlan:
        """The step a measurement times (its layer count is the shape's, scaled to the memory budget).

        Raises ValidationError for a workload that is not a decode step."""
        return plan_decode_step(workload, self.options.memory_budget_mb << 20)

    def prepare(self, workload: Workload) -> PreparedStep:
        """Random weights for the planned step (one layer, copied to every layer and replica), inputs,
        outputs and torch's fp32 results, on ``torch_device``; kept for the next config on the same
        workload. Identical layers still live at distinct addresses, so the step streams all of its
        bytes from memory."""
        import torch

        key = (workload.key, self.options)
        if self._prepared is not None and self._prepared.key == key:
            return self._prepared
        self._prepared = None  # free the previous workload's tensors first
        self._release_memory()
        plan = self.plan(workload)
        dtype = torch_dtype(plan.dtype)
        device = self.torch_device
        generator = torch.Generator(device=device).manual_seed(self.options.seed)
        layer = [(torch.randn(p.n, p.k, generator=generator, device=device) / math.sqrt(p.k)).to(dtype)
                 for p in plan.projections]
        xs = [torch.randn(p.k, generator=generator, device=device).to(dtype) for p in plan.projections]
        references = [torch.mv(w.float(), x.float()) for w, x in zip(layer, xs)]
        replicas = replicate_layer(layer, plan.layers, self._replica_count(plan))
        del layer
        ys = [torch.empty(p.n, dtype=dtype, device=device) for _ in range(plan.layers) for p in plan.projections]
        self._prepared = PreparedStep(key, plan, replicas, xs * plan.layers, ys, references)
        return self._prepared

    def _replica_count(self, plan: StepPlan) -> int:
        """Copies of the step's weights the timed runs rotate over: with ``cold_cache``, enough for four
        times the cache (at most ``max_replicas``, and what the memory budget holds), else one."""
        if not self.options.cold_cache:
            return 1
        limits = [math.ceil(4 * self._cache_bytes() / plan.weight_bytes),
                  (self.options.memory_budget_mb << 20) // plan.weight_bytes]
        if self.max_replicas is not None:
            limits.append(self.max_replicas)
        return max(1, min(limits))

    @abstractmethod
    def _cache_bytes(self) -> int:
        """Bytes of the largest cache between the kernel and memory (CPU last level, GPU L2)."""

    def _release_memory(self) -> None:
        """Return the freed previous step's memory to the device before a new step is allocated."""

    # -- measuring ---------------------------------------------------------------------------------
    def measure(self, workload: Workload, device: Device, config: Mapping[str, Any]) -> Measurement:
        """Check and time ``config`` (knob or record form) on the planned step; latencies in microseconds.

        REJECTED: the config is refused (outside the search space, another device) or the latency is
        below the floor; CRASH: its kernel could not be built or a run raised; FAIL: an output is wrong
        (checked before and after timing); else PASS with the median and IQR of ``repeats`` timed runs.
        Raises ValidationError for a workload that is not a decode step, BackendError when the backend
        cannot run here at all.
        """
        try:
            knobs = self._checked_knobs(workload, device, config)
        except BackendError as exc:
            return Measurement(verdict=Verdict.REJECTED, kind=self.measurement_kind, reason=str(exc))
        floor = self.floor_us(workload, device)
        try:
            launch = self._launcher(knobs)
        except KernelCrash as exc:
            return Measurement(verdict=Verdict.CRASH, kind=self.measurement_kind, bound_us=floor, reason=str(exc))
        prepared = self.prepare(workload)
        run = functools.partial(launch, prepared)
        try:
            run(0)  # on a GPU this also opts the kernel into its shared memory before any graph capture
            self._synchronize()
            wrong = check_step_outputs(prepared)
            if wrong:
                return Measurement(verdict=Verdict.FAIL, kind=self.measurement_kind, bound_us=floor, reason=wrong)
            samples = self._time_step(prepared, run)
            wrong = check_step_outputs(prepared)  # the last timed run's outputs, too
            if wrong:
                return Measurement(verdict=Verdict.FAIL, kind=self.measurement_kind, bound_us=floor, reason=wrong)
        except RuntimeError as exc:
            return Measurement(verdict=Verdict.CRASH, kind=self.measurement_kind, bound_us=floor,
                               reason=f"{self.kernel_error}: {str(exc).splitlines()[0] if str(exc) else exc!r}")
        median_us, iqr_us = latency_stats(samples)
        floor = self._recheck_floor(prepared, median_us, floor)
        if median_us < floor * (1 - self._floor_tolerance()):
            d = self.floor_digits
            return Measurement(
                verdict=Verdict.REJECTED, kind=self.measurement_kind, bound_us=floor, samples=len(samples),
                reason=f"latency {median_us:.{d}f} us is below the memory-bandwidth floor {floor:.{d}f} us"
                       f"{self.below_floor_note}",
            )
        return Measurement(verdict=Verdict.PASS, kind=self.measurement_kind, latency_us=median_us,
                           spread_us=iqr_us, samples=len(samples), bound_us=floor)

    def _checked_knobs(self, workload: Workload, device: Device, config: Mapping[str, Any]) -> dict[str, Any]:
        """The knob dict of ``config``; raises BackendError (InvalidConfigError, ...) when it is refused."""
        self.validate(workload, device, config)
        return self.knob_config(workload, config)

    @abstractmethod
    def _launcher(self, knobs: Mapping[str, Any]) -> Launch:
        """The kernel of ``knobs``, built or loaded, as a function that runs the step on one replica.

        Raises KernelCrash when this config's kernel cannot be built (recorded as its CRASH)."""

    def _synchronize(self) -> None:
        """Wait until the first run's outputs are written (a device that runs asynchronously)."""

    @abstractmethod
    def _time_step(self, prepared: PreparedStep, run: Callable[[int], None]) -> list[float]:
        """Seconds of each of ``repeats`` timed runs of ``run(replica)`` after ``warmup`` untimed ones,
        rotating over the prepared weight replicas."""

    def _floor_tolerance(self) -> float:
        """The fraction below the floor a latency may be before it is rejected as an artifact."""
        return 0.0

    def _recheck_floor(self, prepared: PreparedStep, median_us: float, floor_us: float) -> float:
        """The floor to judge ``median_us`` against (a subclass may measure the bandwidth again)."""
        return floor_us
