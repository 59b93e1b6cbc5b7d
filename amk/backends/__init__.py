"""Built-in kernel backends: what a workload's search space is and how one config is measured."""
