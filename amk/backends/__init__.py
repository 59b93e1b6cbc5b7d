"""Built-in kernel backends: each gives a workload's search space and measures one config on one device.

The measured backends (``cpu``, ``cuda``) build their kernels from the sources beside them.
"""
