"""Built-in featurizers: (workload, device, config) -> numeric vectors for the rankers.

``generic`` encodes any knob mapping (Kernel Tuner parameters, say); ``amk`` adds the decode workload's
shape and schedule features and delegates every other workload to the generic encoding.
"""

from __future__ import annotations

from amk.core.implementation import LazyImplementation
from amk.core.markers import hookimpl


@hookimpl
def register_featurizers(register) -> None:
    """Every built-in featurizer, by where it lives: none of their modules is imported until it is used."""
    register(LazyImplementation("amk", "amk.featurizers.amk:AmkFeaturizer"))
    register(LazyImplementation("generic", "amk.featurizers.generic:GenericFeaturizer"))
