"""Built-in featurizers: (workload, device, config) -> numeric vectors for the rankers.

``generic`` encodes any knob mapping (Kernel Tuner parameters, say); ``amk`` adds the decode workload's
shape and schedule features and delegates every other workload to the generic encoding.
"""
