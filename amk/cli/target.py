"""How commands name a tuning target on the command line: ``--workload`` and ``--device``.

One parser for every command that takes a target (``amk tune``, ``amk warm-start``, ...), so they read
the same. A workload is ``KIND:NAME[:SHAPE]`` with SHAPE as comma-separated ``key=value`` pairs, or a
JSON object ``{"kind": ..., "name": ..., "shape": {...}}``::

    decode:llama-1b:hidden=2048,n_layers=16,n_heads=32,n_kv_heads=8,head_dim=64,intermediate=8192,vocab=128256
    kernel_tuner:convolution_kernel:problem_size=4096x4096

A value is an integer, a number, ``AxBxC`` (a list of integers, e.g. a problem size) or text.
A device is a name amk resolves (``h100``, ``"NVIDIA RTX A6000"``; see ``amk.core.devices``).
"""

from __future__ import annotations

import json
from typing import Any

import click

from amk.core.devices import Device, resolve_device
from amk.core.errors import AmkError, ValidationError
from amk.core.workload import Workload

WORKLOAD_HELP = ("The workload: KIND:NAME[:key=value,...] (e.g. kernel_tuner:convolution_kernel:"
                 "problem_size=4096x4096) or a JSON object with kind, name and shape.")
DEVICE_HELP = "The device, by name (h100, a100, 'NVIDIA RTX A6000', ...)."


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if "x" in text and all(part.isdigit() for part in text.split("x")):
        return [int(part) for part in text.split("x")]
    return text


def parse_workload(text: str) -> Workload:
    """The workload ``text`` names (see the module docstring); ValidationError says what is wrong."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"workload {text!r} is not valid JSON ({exc}); fix the quoting.") from None
        if not isinstance(data, dict) or set(data) - {"kind", "name", "shape"}:
            raise ValidationError(f"workload JSON {text!r} must be an object with kind, name and shape only.")
        return Workload(data.get("kind"), data.get("name"), data.get("shape", {}))
    parts = text.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValidationError(
            f"workload {text!r} must be KIND:NAME[:key=value,...], e.g. "
            "kernel_tuner:convolution_kernel:problem_size=4096x4096."
        )
    shape: dict[str, Any] = {}
    if len(parts) == 3 and parts[2]:
        for pair in parts[2].split(","):
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise ValidationError(f"workload shape item {pair!r} in {text!r} must be key=value.")
            shape[key.strip()] = _value(value.strip())
    return Workload(parts[0], parts[1], shape)


def format_workload(workload: Workload) -> str:
    """The ``KIND:NAME:SHAPE`` text that :func:`parse_workload` reads back as ``workload``."""
    def fmt(v: Any) -> str:
        return "x".join(str(i) for i in v) if isinstance(v, list) else str(v)

    shape = ",".join(f"{k}={fmt(v)}" for k, v in workload.shape.items())
    return f"{workload.kind}:{workload.name}" + (f":{shape}" if shape else "")


class WorkloadType(click.ParamType):
    name = "workload"

    def convert(self, value: Any, param: Any, ctx: Any) -> Workload:
        if isinstance(value, Workload):
            return value
        try:
            return parse_workload(str(value))
        except AmkError as exc:
            self.fail(str(exc), param, ctx)


class DeviceType(click.ParamType):
    name = "device"

    def convert(self, value: Any, param: Any, ctx: Any) -> Device:
        if isinstance(value, Device):
            return value
        try:
            return resolve_device(str(value))
        except AmkError as exc:
            self.fail(str(exc), param, ctx)


def workload_option(**kwargs: Any):
    return click.option("--workload", "workload", type=WorkloadType(), help=WORKLOAD_HELP, **kwargs)


def device_option(**kwargs: Any):
    return click.option("--device", "device", type=DeviceType(), help=DEVICE_HELP, **kwargs)
