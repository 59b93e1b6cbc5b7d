"""The tuning engine: one target's search space, seeds and prior, the loop that measures and gates, and
what a run keeps (state, report).

* :mod:`amk.tuning.settings`: the ``[tune]`` settings; :mod:`amk.tuning.target`: what a target computes
  once (candidates, seeds, prior scores, transfer features); :mod:`amk.tuning.loop`: ``tune``;
  :mod:`amk.tuning.policy`: the ordering policies; :mod:`amk.tuning.gates`: correctness, physical floor,
  A/B keep/revert; :mod:`amk.tuning.isolation`: measuring in a worker process;
  :mod:`amk.tuning.state` / :mod:`amk.tuning.report` / :mod:`amk.tuning.progress`: what a run keeps and shows.

``amk simulate`` (strategies compared on recorded data) is an application on top of this package:
:mod:`amk.simulate`.

(The package is ``amk.tuning``, not ``amk.tune``: ``amk.tune`` is the name of the one-call Python API.)
"""

from amk.tuning.loop import TuneResult, tune
from amk.tuning.settings import TuneSettings, default_learning_kinds, tune_settings
from amk.tuning.target import TuneTarget

__all__ = ["TuneResult", "TuneSettings", "TuneTarget", "default_learning_kinds", "tune", "tune_settings"]
