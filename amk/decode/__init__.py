"""amk's own workload: one LLM decode step, its model shape, schedule and kernel knobs.

The built-in roofline, cpu and cuda backends and the ``amk`` featurizer use it; nothing in
:mod:`amk.core` does. Another kernel family needs none of it.
"""
