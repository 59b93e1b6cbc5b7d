"""Built-in kernel backends: each gives a workload's search space and measures one config on one device.

The measured backends (``cpu``, ``cuda``) build their kernels from the sources beside them.
"""

from __future__ import annotations

from amk.core.implementation import LazyImplementation
from amk.core.markers import hookimpl


@hookimpl
def register_backends(register) -> None:
    """Every built-in backend, by where it lives: none of their modules is imported until it is used."""
    register(LazyImplementation("replay", "amk.backends.replay:ReplayBackend"))
    register(LazyImplementation("roofline", "amk.backends.roofline:RooflineBackend"))
    register(LazyImplementation("cpu", "amk.backends.cpu:CpuBackend", requires={"torch": "torch"}))
    register(LazyImplementation("cuda", "amk.backends.cuda:CudaBackend", requires={"torch": "torch"}))
    register(LazyImplementation("command", "amk.backends.command:CommandBackend"))
